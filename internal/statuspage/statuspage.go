// Package statuspage serves the live status page of the ops server: one tile
// per source (latest thumbnail, caption, attributes, state, rate, latency,
// last error, owner) and a header (model, batching, workers, spool, broker).
// The page is plain HTML, CSS and JavaScript embedded in the binary; it
// follows a server-sent event stream, so it updates without reloading and
// works offline.
//
// Access follows /sources: without a token only a loopback Host is served
// (a DNS-rebinding page gets 403); with a token every request needs it,
// either as "Authorization: Bearer TOKEN" (scripts) or as the session cookie
// that POST /login sets from a form (browsers cannot add a header to an
// <img> or an EventSource). The token never appears in a URL.
package statuspage

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"lookout/internal/now"
)

//go:embed assets
var assets embed.FS

// Header is the service-wide part of the page.
type Header struct {
	Instance    string `json:"instance"`
	Model       string `json:"model"`
	ModelDigest string `json:"model_digest"`
	MaxBatch    int    `json:"max_batch"`
	Workers     int    `json:"workers"`
	// Kafka is nil when no Kafka sink is configured.
	Kafka *Kafka `json:"kafka,omitempty"`
}

// Kafka is the broker and spool state.
type Kafka struct {
	BrokerUp        bool    `json:"broker_up"`
	SpoolRecords    int64   `json:"spool_records"`
	SpoolBytes      int64   `json:"spool_bytes"`
	OldestUnsentSec float64 `json:"oldest_unsent_s"`
	LastError       string  `json:"last_error,omitempty"`
}

// Snapshot is one message of the event stream.
type Snapshot struct {
	Header  Header       `json:"header"`
	Sources []now.Source `json:"sources"`
	Time    time.Time    `json:"time"`
}

// Config configures the page's handlers.
type Config struct {
	// View is the per-source view of now. Required.
	View *now.View
	// Header returns the service-wide state. Required.
	Header func() Header
	// Token, when set, is required on every request (header or cookie).
	Token string
	// Interval is the longest time between two messages of the event
	// stream (rates and ages move even when nothing is captioned).
	// Default 1s.
	Interval time.Duration
	// MinInterval is the shortest time between two messages: changes
	// within it are coalesced. Default 200ms.
	MinInterval time.Duration
	Logger      zerolog.Logger
}

const cookieName = "lookout_session"

// Register adds the page's routes to mux: / (the page), /status/ (its
// assets, events and thumbnails) and /login.
func Register(mux *http.ServeMux, c Config) {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.MinInterval <= 0 {
		c.MinInterval = 200 * time.Millisecond
	}
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	g := guard{token: c.Token}
	mux.Handle("GET /{$}", g.wrap(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, "index.html")
	})))
	mux.Handle("GET /status/assets/", g.wrap(false, http.StripPrefix("/status/assets/", files)))
	mux.Handle("GET /status/events", g.wrap(false, events(c)))
	mux.Handle("GET /status/snapshot", g.wrap(false, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snapshot(c))
	})))
	mux.Handle("GET /status/thumbnail/{id}", g.wrap(false, thumbnail(c.View)))
	cop := http.NewCrossOriginProtection()
	mux.Handle("POST /login", cop.Handler(http.HandlerFunc(g.login)))
}

func serveAsset(w http.ResponseWriter, name string) {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		http.Error(w, "asset missing: "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func snapshot(c Config) Snapshot {
	return Snapshot{Header: c.Header(), Sources: c.View.Sources(), Time: time.Now().UTC()}
}

// events streams a Snapshot on every change (coalesced to one per
// MinInterval) and at least once per Interval. While a stream is open the
// view makes thumbnails.
func events(c Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		stop := c.View.Watch()
		defer stop()
		tick := time.NewTicker(c.Interval)
		defer tick.Stop()
		var sent uint64
		force := true // the first message, and one per Interval
		for {
			changed, version := c.View.Changed()
			if force || version != sent {
				b, err := json.Marshal(snapshot(c))
				if err != nil {
					c.Logger.Error().Err(err).Msg("status page: snapshot not encoded")
					return
				}
				if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
				sent, force = version, false
				select {
				case <-r.Context().Done():
					return
				case <-time.After(c.MinInterval):
				}
				continue
			}
			select {
			case <-r.Context().Done():
				return
			case <-changed:
			case <-tick.C:
				force = true // rates and ages move
			}
		}
	})
}

// thumbnail serves /status/thumbnail/{id}: the JPEG of the source's latest
// delivered caption, 404 before the first one (or while nobody watches).
func thumbnail(v *now.View) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(r.PathValue("id"), ".jpg")
		b, seq, ok := v.Thumb(id)
		if !ok {
			http.Error(w, "no thumbnail yet for source "+strconv.Quote(id)+" (made while the status page is open)", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "private, max-age=3600")
		w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(seq, 10)))
		_, _ = w.Write(b)
	})
}

type guard struct{ token string }

// session is the cookie value: an HMAC of the token, so the cookie is not
// the token itself and changes when the token does.
func (g guard) session() string {
	m := hmac.New(sha256.New, []byte(g.token))
	m.Write([]byte("lookout status page session"))
	return hex.EncodeToString(m.Sum(nil))
}

func (g guard) allowed(r *http.Request) bool {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+g.token)) == 1 {
		return true
	}
	c, err := r.Cookie(cookieName)
	return err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(g.session())) == 1
}

// wrap checks access. Every answer forbids other origins from embedding
// it (Cross-Origin-Resource-Policy) and framing the page. The page itself
// answers a refused browser with the login form (still 401).
func (g guard) wrap(page bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if g.token == "" {
			if !LoopbackHost(r.Host) {
				http.Error(w, fmt.Sprintf("host %q refused: without http.token, the status page answers only to a loopback host name (127.0.0.1, ::1, localhost)", r.Host), http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if !g.allowed(r) {
			if page {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(http.StatusUnauthorized)
				b, _ := assets.ReadFile("assets/login.html")
				_, _ = w.Write(b)
				return
			}
			http.Error(w, "missing or wrong bearer token (Authorization: Bearer TOKEN, or log in at /)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login takes the token from a form and sets the session cookie: HttpOnly
// (scripts cannot read it), SameSite=Strict (other sites' requests do not
// carry it), Secure when the request came over TLS.
func (g guard) login(w http.ResponseWriter, r *http.Request) {
	if g.token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("token")), []byte(g.token)) != 1 {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		b, _ := assets.ReadFile("assets/login.html")
		_, _ = w.Write(b)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: g.session(), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 12 * 3600})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// LoopbackHost reports whether a Host header names this machine's loopback
// (the ops server's guard against DNS rebinding when no token is set).
func LoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
