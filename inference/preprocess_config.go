package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// PreprocessConfig is preprocessor_config.json of a ViTImageProcessor.
type PreprocessConfig struct {
	ImageProcessorType   string          `json:"image_processor_type"`
	FeatureExtractorType string          `json:"feature_extractor_type"`
	DoResize             *bool           `json:"do_resize"`
	DoCenterCrop         *bool           `json:"do_center_crop"`
	Size                 json.RawMessage `json:"size"`
	Resample             *int            `json:"resample"`
	DoRescale            *bool           `json:"do_rescale"`
	RescaleFactor        *float64        `json:"rescale_factor"`
	DoNormalize          *bool           `json:"do_normalize"`
	ImageMean            json.RawMessage `json:"image_mean"`
	ImageStd             json.RawMessage `json:"image_std"`

	// Resolved values (defaults of ViTImageProcessor: 224x224, bilinear, 1/255, mean=std=0.5).
	Height, Width int        `json:"-"`
	Mean, Std     [3]float32 `json:"-"`
	Filter        int        `json:"-"`
	Rescale       float64    `json:"-"`
	Resize        bool       `json:"-"`
	Normalize     bool       `json:"-"`
}

// parsePreprocessConfig parses and resolves preprocessor_config.json.
func parsePreprocessConfig(data []byte) (*PreprocessConfig, error) {
	var p PreprocessConfig
	if err := strictJSON(data, &p); err != nil {
		return nil, err
	}
	typ := p.ImageProcessorType
	if typ == "" {
		typ = p.FeatureExtractorType
	}
	switch typ {
	case "ViTImageProcessor", "ViTImageProcessorFast", "ViTFeatureExtractor", "DeiTImageProcessor":
	case "CLIPImageProcessor", "CLIPImageProcessorFast":
		// Florence-2's: the same steps when center cropping is off (its folders say so).
		if p.DoCenterCrop == nil || *p.DoCenterCrop {
			return nil, fmt.Errorf("image_processor_type %s with do_center_crop is not supported; set do_center_crop false", typ)
		}
	default:
		return nil, fmt.Errorf("image_processor_type %q is not supported, want ViTImageProcessor (or CLIPImageProcessor without center crop)", typ)
	}
	p.Height, p.Width, p.Filter, p.Rescale = 224, 224, resampleBilinear, 1.0/255
	p.Resize, p.Normalize = true, true
	doRescale := true
	if p.DoResize != nil {
		p.Resize = *p.DoResize
	}
	if p.DoRescale != nil {
		doRescale = *p.DoRescale
	}
	if p.DoNormalize != nil {
		p.Normalize = *p.DoNormalize
	}
	if p.RescaleFactor != nil {
		p.Rescale = *p.RescaleFactor
	}
	if !doRescale {
		p.Rescale = 1
	}
	if p.Resample != nil {
		p.Filter = *p.Resample
	}
	if _, ok := pilFilters[p.Filter]; !ok {
		return nil, fmt.Errorf("resample %d is not supported (want 1 lanczos, 2 bilinear, 3 bicubic, 4 box or 5 hamming)", p.Filter)
	}
	if len(p.Size) > 0 && string(p.Size) != "null" {
		var sq int
		var hw struct {
			Height, Width int
			ShortestEdge  int `json:"shortest_edge"`
		}
		if err := json.Unmarshal(p.Size, &sq); err == nil {
			p.Height, p.Width = sq, sq
		} else if err := json.Unmarshal(p.Size, &hw); err == nil && hw.Height > 0 && hw.Width > 0 {
			p.Height, p.Width = hw.Height, hw.Width
		} else {
			return nil, fmt.Errorf("size %.60s: want {\"height\": H, \"width\": W}", p.Size)
		}
	}
	if p.Height <= 0 || p.Width <= 0 || p.Height > 8192 || p.Width > 8192 {
		return nil, fmt.Errorf("size %dx%d is out of range", p.Width, p.Height)
	}
	var err error
	if p.Mean, err = triple(p.ImageMean, 0.5); err != nil {
		return nil, fmt.Errorf("image_mean: %w", err)
	}
	if p.Std, err = triple(p.ImageStd, 0.5); err != nil {
		return nil, fmt.Errorf("image_std: %w", err)
	}
	for _, s := range p.Std {
		if s == 0 || math.IsNaN(float64(s)) {
			return nil, errors.New("image_std has a zero or NaN entry")
		}
	}
	if !(p.Rescale > 0) || math.IsInf(p.Rescale, 0) {
		return nil, fmt.Errorf("rescale_factor %v must be a positive number", p.Rescale)
	}
	return &p, nil
}

// triple reads a number or a list of three numbers (one per RGB channel).
func triple(raw json.RawMessage, def float32) ([3]float32, error) {
	out := [3]float32{def, def, def}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var one float64
	if err := json.Unmarshal(raw, &one); err == nil {
		return [3]float32{float32(one), float32(one), float32(one)}, nil
	}
	var many []float64
	if err := json.Unmarshal(raw, &many); err != nil || len(many) != 3 {
		return out, fmt.Errorf("want a number or 3 numbers, got %.40s", raw)
	}
	return [3]float32{float32(many[0]), float32(many[1]), float32(many[2])}, nil
}
