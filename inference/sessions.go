package inference

import (
	"io/fs"
	"path/filepath"
	"strings"
)

// sessionSet is one copy of a model's ONNX Runtime sessions; which fields are
// set depends on the architecture and the decoder layout.
type sessionSet struct {
	encoder  *session
	decoder  *session // merged or with-past
	decoder0 *session // split layout only
	attr     *session // attribute heads, when the folder has them

	// Florence-2: the DaViT vision encoder, embed_tokens, the BART encoder and decoder.
	vision, embed, flEncoder, flDecoder *session
}

func (s *sessionSet) close() {
	for _, p := range []**session{&s.encoder, &s.decoder, &s.decoder0, &s.attr, &s.vision, &s.embed, &s.flEncoder, &s.flDecoder} {
		if *p != nil {
			release(*p)
			*p = nil
		}
	}
}

// takeSessions returns an idle session set, or, when every set is in use,
// one to share, round robin (ONNX Runtime takes concurrent runs on a session).
func (m *Model) takeSessions() (s *sessionSet, shared bool) {
	select {
	case s = <-m.free:
		return s, false
	default:
	}
	i := m.shareNext.Add(1)
	return m.sets[int(i)%len(m.sets)], true
}

// putSessions returns a set takeSessions gave out unshared.
func (m *Model) putSessions(s *sessionSet) { m.free <- s }

// GraphBytes is the size of the .onnx files under dir (0 when there are
// none or dir cannot be read): what each copy of the sessions holds, about.
func GraphBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".onnx") {
			if st, err := d.Info(); err == nil {
				n += st.Size()
			}
		}
		return nil
	})
	return n
}
