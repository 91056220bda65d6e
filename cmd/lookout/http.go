package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"lookout/internal/config"
)

// sourceManager is what the HTTP API needs from the running service.
type sourceManager interface {
	SourceIDs() []string
	AddSource(s config.Source) error
	RemoveSource(id string) error
}

// opsServer serves /metrics, /healthz, /readyz and the source-management
// endpoint /sources (GET lists, POST adds a source, DELETE ?id= removes one).
type opsServer struct {
	srv *http.Server
	ln  net.Listener
}

func startOpsServer(addr, token string, reg *prometheus.Registry, ready func() (string, error), mgr sourceManager, log zerolog.Logger) (*opsServer, error) {
	mux := http.NewServeMux()
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
	mux.Handle("/sources", requireToken(token, sourcesHandler(mgr)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w; pick a free port or set http.listen to \"\" to disable", addr, err)
	}
	s := &opsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("http: /metrics /healthz /readyz /sources")
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

func sourcesHandler(mgr sourceManager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"sources": mgr.SourceIDs()})
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
