#!/usr/bin/python3
"""Serve an H.264 MP4 over RTSP in an endless loop (for lookout's tests and demos).

Usage: /usr/bin/python3 scripts/rtsp_server.py FILE.mp4 PORT /path
Needs Debian's gir1.2-gst-rtsp-server-1.0, python3-gi and gstreamer1.0-plugins-{good,bad}.
Each client gets its own pipeline starting at the file's beginning; at end of
file the pipeline seeks back to 0 instead of ending the stream.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    path, port, mount = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{path}" ! qtdemux ! h264parse name=parse '
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )")

    def rewind_on_eos(pad, info, pipeline):
        if info.get_event().type != Gst.EventType.EOS:
            return Gst.PadProbeReturn.OK
        GLib.idle_add(lambda: pipeline.seek_simple(
            Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0) and False)
        return Gst.PadProbeReturn.DROP

    def configure(_factory, media):
        bin_ = media.get_element()
        pad = bin_.get_by_name("parse").get_static_pad("sink")
        pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, rewind_on_eos, bin_)

    factory.connect("media-configure", configure)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    print(f"rtsp_server: serving {path} at rtsp://127.0.0.1:{port}{mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
