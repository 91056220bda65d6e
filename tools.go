//go:build tools

// Package lookout pins module dependencies that are used only by some build
// configurations, so that `go mod tidy` keeps them.
package lookout

import (
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/rs/zerolog"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/segmentio/kafka-go"
	_ "github.com/spf13/cobra"
	_ "github.com/sugarme/tokenizer"
	_ "github.com/yalue/onnxruntime_go"
	_ "go.yaml.in/yaml/v3"
	_ "gocv.io/x/gocv"
)
