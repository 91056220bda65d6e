// Package e2e holds lookout's end-to-end tests. They build the real binary
// once (TestMain) and drive it as a subprocess against the real parts: the
// Kafka broker of scripts/kafka.sh, the GStreamer RTSP server of
// scripts/rtsp-server, ONNX Runtime and the model folders. The package has
// no code of its own outside its tests.
package e2e
