package ingest

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"lookout/synth"
)

// Kind says what a source URI points at.
type Kind int

// The source kinds.
const (
	KindFile   Kind = iota + 1 // a recorded file, replayed
	KindRTSP                   // an RTSP camera or server
	KindDevice                 // a V4L2 capture device
	KindSynth                  // a synthetic scene rendered in real time
)

// String returns the kind's URI scheme name.
func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindRTSP:
		return "rtsp"
	case KindDevice:
		return "device"
	case KindSynth:
		return "synth"
	}
	return "unknown"
}

// Live reports whether sources of this kind deliver frames in real time.
func (k Kind) Live() bool { return k == KindRTSP || k == KindDevice || k == KindSynth }

// Defaults of synth:// URIs.
const (
	DefaultSynthSeed   = 1
	DefaultSynthFPS    = 30
	DefaultSynthWidth  = 1280
	DefaultSynthHeight = 720
)

// Location is a parsed source URI. Only the fields of its Kind are set.
type Location struct {
	Kind Kind
	// Redacted is the URI with any password replaced by "xxxxx": the form
	// to put in logs, errors and metric labels.
	Redacted string

	// Path is the file to replay (KindFile).
	Path string

	// URL is the address handed to FFmpeg (KindRTSP), credentials included and
	// the transport parameter removed. Never log it: log Redacted.
	URL string
	// Transport is "tcp" (the default) or "udp" (KindRTSP).
	Transport string

	// Device is the V4L2 device index, N in /dev/videoN (KindDevice).
	Device int

	// Domain is the synthetic scene family (KindSynth).
	Domain synth.Domain
	// Seed picks the scene sequence (KindSynth); default DefaultSynthSeed.
	Seed int64
	// FPS is the render rate (KindSynth); default DefaultSynthFPS.
	FPS float64
	// Width and Height are the frame size (KindSynth); default 1280x720.
	Width, Height int
}

var (
	schemeRE   = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)
	devVideoRE = regexp.MustCompile(`^/dev/video([0-9]+)$`)
	sizeRE     = regexp.MustCompile(`^([0-9]{1,5})x([0-9]{1,5})$`)
)

const uriHelp = "use a file path, file:///abs/path, rtsp://host/path, device://N, /dev/videoN or synth://driving"

// uriError builds a one-line error naming the (redacted) URI and what to do.
func uriError(raw, format string, args ...any) error {
	return fmt.Errorf("source %q: %s", oneLine(Redact(raw)), scrub(fmt.Sprintf(format, args...), raw))
}

// oneLine keeps an error on one line whatever the input held.
func oneLine(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// ParseURI classifies and checks a source URI:
//
//   - a plain path or file:///abs/path: a recorded file (replay);
//   - rtsp://[user:pass@]host[:port]/path[?transport=tcp|udp]: an RTSP stream,
//     TCP unless transport=udp; other query parameters are kept for the camera;
//   - device://N or /dev/videoN: a V4L2 capture device;
//   - synth://DOMAIN[?seed=S&fps=F&size=WxH]: a synthetic scene (see package synth).
//
// Errors are one line, name the URI with its password redacted, and say what
// to do. ParseURI does not touch the file system or the network.
func ParseURI(s string) (Location, error) {
	raw := strings.TrimSpace(s)
	loc := Location{Redacted: Redact(raw)}
	if raw == "" {
		return loc, fmt.Errorf("empty source URI: %s", uriHelp)
	}
	if strings.ContainsAny(raw, "\x00\n\r") {
		return loc, uriError(raw, "contains a NUL or line break: %s", uriHelp)
	}
	m := schemeRE.FindStringSubmatch(raw)
	if m == nil {
		if dm := devVideoRE.FindStringSubmatch(raw); dm != nil {
			return parseDeviceIndex(raw, dm[1], loc)
		}
		loc.Kind = KindFile
		loc.Path = raw
		return loc, nil
	}
	scheme := strings.ToLower(m[1])
	rest := raw[len(m[0]):]
	switch scheme {
	case "file":
		return parseFileURI(raw, rest, loc)
	case "rtsp", "rtsps":
		return parseRTSP(raw, scheme, rest, loc)
	case "device":
		if dm := devVideoRE.FindStringSubmatch(rest); dm != nil {
			return parseDeviceIndex(raw, dm[1], loc)
		}
		return parseDeviceIndex(raw, rest, loc)
	case "synth":
		return parseSynth(raw, rest, loc)
	}
	return loc, uriError(raw, "unsupported scheme %q: %s", scheme, uriHelp)
}

func parseFileURI(raw, rest string, loc Location) (Location, error) {
	u, err := url.Parse("file://" + rest)
	if err != nil {
		return loc, uriError(raw, "not a valid file URI (%s): write file:///abs/path or a plain path", urlErrReason(err))
	}
	if u.Host != "" && u.Host != "localhost" {
		return loc, uriError(raw, "file URI has host %q: write file:///abs/path (three slashes) or a plain path", u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return loc, uriError(raw, "file URI takes no ?query or #fragment: remove them")
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return loc, uriError(raw, "file URI needs an absolute path: write file:///abs/path or a plain path")
	}
	loc.Kind = KindFile
	loc.Path = u.Path
	return loc, nil
}

func parseRTSP(raw, scheme, rest string, loc Location) (Location, error) {
	// Split by hand, as FFmpeg does: the authority ends at the first "/", "?"
	// or "#", and the user information at its last "@". Messages never echo
	// host, port or query values: with a malformed password they could hold
	// parts of it.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	hostport := authority[strings.LastIndex(authority, "@")+1:]
	if strings.Contains(rest[end:], "@") && strings.Contains(Redact(raw), "xxxxx") {
		return loc, uriError(raw, "the user name or password holds \"/\", \"?\" or \"#\": percent-encode them (%%2F, %%3F, %%23; an \"@\" in the path as %%40)")
	}
	u, err := url.Parse(scheme + "://" + hostport)
	if err != nil || u.Hostname() == "" || u.User != nil {
		return loc, uriError(raw, "RTSP URL has no valid host: write rtsp://[user:pass@]host[:port]/path")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return loc, uriError(raw, "RTSP port is not a number in 1-65535")
		}
	}
	base, query, hasQuery := strings.Cut(rest, "?")
	loc.Transport = "tcp"
	var keep []string
	if hasQuery {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if !strings.EqualFold(k, "transport") {
				if kv != "" {
					keep = append(keep, kv)
				}
				continue
			}
			switch strings.ToLower(v) {
			case "tcp", "udp":
				loc.Transport = strings.ToLower(v)
			default:
				return loc, uriError(raw, "transport must be tcp or udp")
			}
		}
	}
	loc.Kind = KindRTSP
	loc.URL = scheme + "://" + base
	if len(keep) > 0 {
		loc.URL += "?" + strings.Join(keep, "&")
	}
	return loc, nil
}

func parseDeviceIndex(raw, s string, loc Location) (Location, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "/"))
	if err != nil || n < 0 || n > 63 {
		return loc, uriError(raw, "device must be an index 0-63: write device://0 or /dev/video0")
	}
	loc.Kind = KindDevice
	loc.Device = n
	return loc, nil
}

func parseSynth(raw, rest string, loc Location) (Location, error) {
	name, query, _ := strings.Cut(rest, "?")
	name = strings.TrimSuffix(name, "/")
	d, err := synth.ParseDomain(name)
	if err != nil {
		return loc, uriError(raw, "unknown synthetic domain %q: write synth://%s", name, domainList())
	}
	loc.Kind = KindSynth
	loc.Domain = d
	loc.Seed = DefaultSynthSeed
	loc.FPS = DefaultSynthFPS
	loc.Width, loc.Height = DefaultSynthWidth, DefaultSynthHeight
	q, err := url.ParseQuery(query)
	if err != nil {
		return loc, uriError(raw, "bad query (%s): write synth://driving?seed=3&fps=30&size=1280x720", urlErrReason(err))
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "seed":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return loc, uriError(raw, "seed=%q is not an integer", v)
			}
			loc.Seed = n
		case "fps":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0 && f <= 240) {
				return loc, uriError(raw, "fps=%q is not a number in (0, 240]", v)
			}
			loc.FPS = f
		case "size":
			sm := sizeRE.FindStringSubmatch(v)
			if sm == nil {
				return loc, uriError(raw, "size=%q is not WIDTHxHEIGHT, e.g. 1280x720", v)
			}
			w, _ := strconv.Atoi(sm[1])
			h, _ := strconv.Atoi(sm[2])
			if w < 16 || h < 16 || w > 7680 || h > 4320 {
				return loc, uriError(raw, "size=%q is outside 16x16..7680x4320", v)
			}
			loc.Width, loc.Height = w, h
		default:
			return loc, uriError(raw, "unknown parameter %q: synth takes seed, fps and size", k)
		}
	}
	return loc, nil
}

func domainList() string {
	var names []string
	for _, d := range synth.Domains {
		names = append(names, string(d))
	}
	return strings.Join(names, " or synth://")
}

// urlErrReason keeps only net/url's reason, which would otherwise quote the
// unredacted URL.
func urlErrReason(err error) string {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	return oneLine(err.Error())
}

// Redact returns uri with the password of its user information replaced by
// "xxxxx", for logs, errors and metric labels. It works on text that does
// not parse as a URL too: everything between "://" and the last "@" before
// the path counts as user information, so a password holding "/", "@" or
// "?" is still hidden. Strings without a password come back unchanged.
func Redact(uri string) string {
	i := strings.Index(uri, "://")
	if i < 0 {
		return uri
	}
	rest := uri[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return uri
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return uri
	}
	return uri[:i+3] + user + ":xxxxx" + rest[at:]
}

// password returns the password in uri's user information ("" if none),
// using the same rule as Redact.
func password(uri string) string {
	i := strings.Index(uri, "://")
	if i < 0 {
		return ""
	}
	rest := uri[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pass, _ := strings.Cut(rest[:at], ":")
	return pass
}

// scrub removes every spelling of uri's password from msg (raw and
// percent-decoded), for text that came from OpenCV or FFmpeg.
func scrub(msg, uri string) string {
	msg = strings.ReplaceAll(msg, uri, Redact(uri))
	if p := password(uri); p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
		if dp, err := url.PathUnescape(p); err == nil && dp != "" {
			msg = strings.ReplaceAll(msg, dp, "xxxxx")
		}
	}
	return oneLine(msg)
}
