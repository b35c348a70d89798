// Package codec turns a store snapshot into JSON and back.
package codec

import (
	"encoding/json"

	"github.com/example/kv/store"
)

func Encode(s *store.Store, keys []string) ([]byte, error) {
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := s.Get(k); ok {
			out[k] = string(v)
		}
	}
	return json.Marshal(out)
}
