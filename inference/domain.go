package inference

import (
	"errors"
	"fmt"
	"math"
)

// fileDomain is the optional domain profile our export toolchain writes
// (python -m lookout_train domain fit): a statistic of the encoder's pooled
// embedding over held-out training-domain frames. Public models have none.
const fileDomain = "domain_profile.json"

// DomainScore says how far an image's encoder embedding lies from the frames
// the model was trained on (docs/MODELS.md, "Out-of-domain flag").
type DomainScore struct {
	// Distance is the rms of the pooled embedding's part that the training
	// frames' principal subspace leaves unexplained (docs/MODELS.md).
	Distance float64 `json:"distance"`
	// InDomain is Distance <= the profile's calibrated threshold.
	InDomain bool `json:"in_domain"`
}

// DomainProfile is what the service needs to explain an out-of-domain source.
type DomainProfile struct {
	// TrainedOn is one sentence naming the training data.
	TrainedOn string `json:"trained_on"`
	// Threshold is the calibrated distance above which a frame is out of domain.
	Threshold float64 `json:"threshold"`
	// Rank is the number of principal directions of the statistic.
	Rank int `json:"rank"`
}

// domainProfile is domain_profile.json. Fields the engine does not read
// (statistic, percentile, calibration) document the file for people.
type domainProfile struct {
	Version     int            `json:"version"`
	TrainedOn   string         `json:"trained_on"`
	Statistic   string         `json:"statistic"`
	Dims        int            `json:"dims"`
	Percentile  float64        `json:"percentile"`
	Threshold   float64        `json:"threshold"`
	Calibration map[string]any `json:"calibration"`
	Rank        int            `json:"rank"`
	Mean        []float64      `json:"mean"`
	Components  [][]float64    `json:"components"`
}

// parseDomainProfile reads and checks domain_profile.json against the
// encoder's hidden size.
func parseDomainProfile(data []byte, hidden int) (*domainProfile, error) {
	var p domainProfile
	if err := strictJSON(data, &p); err != nil {
		return nil, err
	}
	switch {
	case p.Version != 1:
		return nil, fmt.Errorf("version %d is unknown (want 1); regenerate it with python -m lookout_train domain fit", p.Version)
	case p.TrainedOn == "":
		return nil, errors.New("trained_on is empty; it names the training data in the out-of-domain warning")
	case len(p.Mean) != hidden:
		return nil, fmt.Errorf("mean has %d values but the encoder's hidden size is %d; the profile does not belong to this model", len(p.Mean), hidden)
	case len(p.Components) == 0 || len(p.Components) >= hidden:
		return nil, fmt.Errorf("components has %d rows; want 1 to %d (the principal directions of the training embeddings)", len(p.Components), hidden-1)
	case !(p.Threshold > 0) || math.IsInf(p.Threshold, 0):
		return nil, fmt.Errorf("threshold %v must be a positive number", p.Threshold)
	}
	if err := finite("mean", p.Mean); err != nil {
		return nil, err
	}
	for k, c := range p.Components {
		if len(c) != hidden {
			return nil, fmt.Errorf("components[%d] has %d values but the encoder's hidden size is %d; the profile does not belong to this model", k, len(c), hidden)
		}
		if err := finite(fmt.Sprintf("components[%d]", k), c); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

func finite(name string, xs []float64) error {
	for i, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%s[%d] is %v; want a finite number", name, i, x)
		}
	}
	return nil
}

// readDomain reads the optional profile; m.hidden must be set.
func (m *Model) readDomain() error {
	b, err := m.read(fileDomain, false)
	if err != nil || b == nil {
		return err
	}
	if m.domain, err = parseDomainProfile(b, m.hidden); err != nil {
		return fileError(m.dir, fileDomain, "%v", err)
	}
	return nil
}

// Domain returns the model's domain profile, or false when the model has
// none (results then carry no DomainScore).
func (m *Model) Domain() (DomainProfile, bool) {
	if m.domain == nil {
		return DomainProfile{}, false
	}
	return DomainProfile{TrainedOn: m.domain.TrainedOn, Threshold: m.domain.Threshold, Rank: len(m.domain.Components)}, true
}

// domainScores scores each image of the batch from the encoder output it
// already has (enc [n, T, D]): no extra model run. Nil without a profile.
func (m *Model) domainScores(enc []float32, n int) []*DomainScore {
	p := m.domain
	if p == nil {
		return nil
	}
	t, d := m.encSeq, m.hidden
	out := make([]*DomainScore, n)
	pooled, resid := make([]float64, d), make([]float64, d)
	for b := 0; b < n; b++ {
		clear(pooled)
		img := enc[b*t*d : (b+1)*t*d]
		for k := 0; k < t; k++ {
			for j, v := range img[k*d : (k+1)*d] {
				pooled[j] += float64(v)
			}
		}
		for j := range pooled {
			pooled[j] = pooled[j]/float64(t) - p.Mean[j]
		}
		// Residual of the projection onto the principal subspace.
		copy(resid, pooled)
		for _, w := range p.Components {
			var y float64
			for j, c := range pooled {
				y += w[j] * c
			}
			for j := range resid {
				resid[j] -= y * w[j]
			}
		}
		var ss float64
		for _, r := range resid {
			ss += r * r
		}
		dist := math.Sqrt(ss / float64(d))
		out[b] = &DomainScore{Distance: dist, InDomain: dist <= p.Threshold}
	}
	return out
}
