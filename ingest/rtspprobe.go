package ingest

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// probeTimeout bounds the diagnostic exchange after a failed RTSP open
// (capped by the open timeout).
const probeTimeout = 2 * time.Second

// rtspProbe is what one DESCRIBE told about a stream that did not open.
// OpenCV only reports that the open failed; the probe tells an unreachable
// server from a wrong path or wrong credentials.
type rtspProbe struct {
	addr string // host:port, never with credentials
	path string // the URL path, without query (it may hold tokens)
	// dialErr is set when no TCP connection could be made.
	dialErr string
	// status and reason are the server's answer (0: no RTSP answer).
	status int
	reason string
	// noAnswer says why there was no answer on an open connection.
	noAnswer string
	// withCreds: the URL had a user name, and the last request carried it.
	withCreds bool
}

// found reports whether the server has the path (answered 2xx).
func (p rtspProbe) found() bool { return p.status >= 200 && p.status < 300 }

// String is one line for errors and logs: what failed and what to check.
func (p rtspProbe) String() string {
	switch {
	case p.dialErr != "":
		return fmt.Sprintf("cannot connect to %s: %s", p.addr, p.dialErr)
	case p.noAnswer != "":
		return fmt.Sprintf("%s accepted the connection but %s: check the port", p.addr, p.noAnswer)
	}
	answer := fmt.Sprintf("rtsp server at %s answered %d %s for path %s", p.addr, p.status, p.reason, p.path)
	switch {
	case p.found():
		return answer + ", but FFmpeg could not open the stream: check that it carries H.264 or H.265 video (or try ?transport=udp)"
	case p.status == http.StatusNotFound:
		return answer + ": check the path"
	case p.status == http.StatusUnauthorized && p.withCreds:
		return answer + ": check the user name and password"
	case p.status == http.StatusUnauthorized:
		return answer + ": the stream needs a user name and password: put them in the URL (rtsp://user:pass@host/path)"
	case p.status == http.StatusForbidden:
		return answer + ": check that this user may watch the stream"
	}
	return answer
}

// rtspTarget splits an rtsp:// URL as FFmpeg does (see parseRTSP) into the
// request URL without credentials, host:port, path and the credentials.
func rtspTarget(raw string) (reqURL, addr, path, user, pass string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", "", "", "", "", errors.New("not a URL")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	hostport := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		hostport = authority[at+1:]
		u, p, _ := strings.Cut(authority[:at], ":")
		if user, err = url.PathUnescape(u); err != nil {
			user = u
		}
		if pass, err = url.PathUnescape(p); err != nil {
			pass = p
		}
	}
	tail, _, _ = strings.Cut(tail, "#")
	u, err := url.Parse(scheme + "://" + hostport)
	if err != nil || u.Hostname() == "" {
		return "", "", "", "", "", errors.New("no host")
	}
	port := u.Port()
	if port == "" {
		port = "554"
		if strings.EqualFold(scheme, "rtsps") {
			port = "322"
		}
	}
	addr = net.JoinHostPort(u.Hostname(), port)
	path, _, _ = strings.Cut(tail, "?")
	if path == "" {
		path = "/"
	}
	return scheme + "://" + hostport + tail, addr, path, user, pass, nil
}

// probeRTSP sends the server of rawURL one DESCRIBE (a second one with
// credentials when it asks for them and the URL has some) and reports its
// answer, or why there was none. It never sends credentials the URL does
// not hold and never returns them. ok is false when the probe cannot tell:
// the URL could not be split (ParseURI checked it, so only for hand-made
// URLs), or an rtsps:// server accepted the connection.
func probeRTSP(ctx context.Context, rawURL string, timeout time.Duration) (p rtspProbe, ok bool) {
	reqURL, addr, path, user, pass, err := rtspTarget(rawURL)
	if err != nil {
		return p, false
	}
	p = rtspProbe{addr: addr, path: path}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		p.dialErr = dialReason(err, timeout)
		return p, true
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if strings.EqualFold(strings.SplitN(rawURL, "://", 2)[0], "rtsps") {
		// TLS would need the handshake: connecting is all we can tell, and
		// the generic message says more than "it connected".
		return p, false
	}
	r := textproto.NewReader(bufio.NewReader(conn))
	auth := ""
	for cseq := 1; cseq <= 2; cseq++ {
		req := fmt.Sprintf("DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\nAccept: application/sdp\r\nUser-Agent: lookout\r\n%s\r\n", reqURL, cseq, auth)
		if _, err := io.WriteString(conn, req); err != nil {
			p.noAnswer = "closed it on the request"
			return p, true
		}
		hdr, err := readRTSPAnswer(r, &p)
		if err != nil {
			p.noAnswer = err.Error()
			if ctx.Err() != nil {
				p.noAnswer = fmt.Sprintf("gave no RTSP answer within %s", timeout)
			}
			return p, true
		}
		if p.status != http.StatusUnauthorized || user == "" || auth != "" {
			return p, true
		}
		if auth = authorization(hdr.Values("WWW-Authenticate"), reqURL, user, pass); auth == "" {
			p.withCreds = true // a scheme we cannot answer: say the credentials failed
			return p, true
		}
		p.withCreds = true
		if n, _ := strconv.Atoi(hdr.Get("Content-Length")); n > 0 {
			if _, err := io.CopyN(io.Discard, r.R, min(int64(n), 1<<16)); err != nil {
				return p, true
			}
		}
	}
	return p, true
}

// readRTSPAnswer reads a status line and headers into p.
func readRTSPAnswer(r *textproto.Reader, p *rtspProbe) (textproto.MIMEHeader, error) {
	line, err := r.ReadLine()
	if err != nil {
		return nil, errors.New("closed it without an RTSP answer")
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, reason, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "RTSP/") || err != nil || n < 100 || n > 999 {
		return nil, errors.New("answered something that is not RTSP")
	}
	p.status = n
	p.reason = oneLine(strings.TrimSpace(reason))
	if len(p.reason) > 60 {
		p.reason = p.reason[:60]
	}
	if p.reason == "" {
		p.reason = http.StatusText(n)
	}
	hdr, err := r.ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return textproto.MIMEHeader{}, nil
	}
	return hdr, nil
}

// authorization answers a Basic or Digest (MD5) challenge with an
// Authorization header line; "" for other schemes.
func authorization(challenges []string, uri, user, pass string) string {
	for _, c := range challenges {
		scheme, params, _ := strings.Cut(strings.TrimSpace(c), " ")
		switch strings.ToLower(scheme) {
		case "digest":
			kv := authParams(params)
			if a := strings.ToUpper(kv["algorithm"]); a != "" && a != "MD5" {
				continue
			}
			h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
			ha1 := h(user + ":" + kv["realm"] + ":" + pass)
			ha2 := h("DESCRIBE:" + uri)
			line := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s"`, user, kv["realm"], kv["nonce"], uri)
			if qops := kv["qop"]; qops != "" && strings.Contains(","+strings.ReplaceAll(qops, " ", "")+",", ",auth,") {
				b := make([]byte, 8)
				_, _ = rand.Read(b)
				cnonce := hex.EncodeToString(b)
				line += fmt.Sprintf(`, qop=auth, nc=00000001, cnonce="%s", response="%s"`, cnonce,
					h(ha1+":"+kv["nonce"]+":00000001:"+cnonce+":auth:"+ha2))
			} else {
				line += fmt.Sprintf(`, response="%s"`, h(ha1+":"+kv["nonce"]+":"+ha2))
			}
			if o := kv["opaque"]; o != "" {
				line += fmt.Sprintf(`, opaque="%s"`, o)
			}
			return "Authorization: " + line + "\r\n"
		case "basic":
			return "Authorization: Basic " + basicAuth(user, pass) + "\r\n"
		}
	}
	return ""
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// authParams parses `k="v", k2=v2` challenge parameters.
func authParams(s string) map[string]string {
	kv := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ,")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				v, rest = rest[1:], ""
			} else {
				v, rest = rest[1:1+end], rest[2+end:]
			}
		} else {
			v, rest, _ = strings.Cut(rest, ",")
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		s = rest
	}
	return kv
}

// dialReason turns a dial error into a few words: "connection refused",
// "no route to host", "no answer within 2s", "unknown host".
func dialReason(err error, timeout time.Duration) string {
	var dns *net.DNSError
	var ne net.Error
	var se *os.SyscallError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "unknown host"
		}
		return "cannot resolve the host: " + dns.Err
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s (host down or packets dropped)", timeout)
	case errors.As(err, &se):
		return se.Err.Error()
	}
	return oneLine(err.Error())
}
