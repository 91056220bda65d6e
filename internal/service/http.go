package service

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"lookout/internal/config"
	"lookout/internal/now"
	"lookout/internal/statuspage"
)

// sourceManager is what the HTTP API needs from the running service.
type sourceManager interface {
	SourceIDs() []string
	// SourceStates maps each running source to its state (running, ...).
	SourceStates() map[string]string
	AddSource(s config.Source) error
	RemoveSource(id string) error
}

// opsServer serves /metrics, /healthz, /readyz and the source-management
// endpoint /sources (GET lists, POST adds a source, DELETE ?id= removes one).
type opsServer struct {
	srv *http.Server
	ln  net.Listener
}

func startOpsServer(addr, token string, reg *prometheus.Registry, ready func() (string, error), mgr sourceManager,
	page statuspage.Config, log zerolog.Logger) (*opsServer, error) {
	mux := http.NewServeMux()
	page.Token, page.Logger = token, log
	statuspage.Register(mux, page)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		detail, err := ready()
		if err != nil {
			http.Error(w, "not ready: "+err.Error()+"\n"+detail, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
		fmt.Fprint(w, detail)
	})
	mux.Handle("/sources", guardBrowsers(token, requireToken(token, sourcesHandler(mgr, page.View))))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w; pick a free port or set http.listen to \"\" to disable", addr, err)
	}
	s := &opsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	// Shutdown does not end open requests; the status page's event streams
	// never end by themselves, so their contexts end when Shutdown begins.
	base, cancel := context.WithCancel(context.Background())
	s.srv.BaseContext = func(net.Listener) context.Context { return base }
	s.srv.RegisterOnShutdown(cancel)
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("http: / (status page) /metrics /healthz /readyz /sources")
	return s, nil
}

func (s *opsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// requireToken checks a bearer token when one is configured.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guardBrowsers keeps web pages away from the source-management endpoint:
// a page open in the operator's browser could otherwise make lookout open
// local files or internal RTSP hosts. It refuses
//   - cross-origin requests (net/http's CrossOriginProtection: Sec-Fetch-Site,
//     else Origin against Host), with 403;
//   - a POST whose body is not JSON or YAML by its Content-Type (a form or
//     text/plain is what a page can send without a CORS preflight), with 415;
//   - without a token, a Host that is not a loopback name or address (DNS
//     rebinding: a page whose own name resolves to 127.0.0.1 is same-origin),
//     with 403.
//
// Scripts and curl send none of these headers, or send them right.
func guardBrowsers(token string, next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "cross-origin request refused: /sources takes requests from scripts and the same origin only", http.StatusForbidden)
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" && !statuspage.LoopbackHost(r.Host) {
			http.Error(w, fmt.Sprintf("host %q refused: without http.token, /sources answers only to a loopback host name (127.0.0.1, ::1, localhost)", r.Host), http.StatusForbidden)
			return
		}
		if r.Method == http.MethodPost {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			switch {
			case err == nil && (mt == "application/json" || mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml"):
			default:
				http.Error(w, fmt.Sprintf("content type %q refused: send the source as JSON with Content-Type: application/json (or YAML as application/yaml)", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
				return
			}
		}
		next.ServeHTTP(w, r)
	}))
}

// sourcesHandler serves /sources. GET lists the ids ("sources") and, from
// the view of now, each source's state and latest record ("status").
func sourcesHandler(mgr sourceManager, view *now.View) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"sources": mgr.SourceIDs(), "status": view.Sources(), "states": mgr.SourceStates()})
		case http.MethodPost:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
			if err != nil {
				http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
				return
			}
			s, err := config.ParseSource(body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := mgr.AddSource(s); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
		case http.MethodDelete:
			if err := mgr.RemoveSource(r.URL.Query().Get("id")); err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "use GET, POST or DELETE", http.StatusMethodNotAllowed)
		}
	})
}
