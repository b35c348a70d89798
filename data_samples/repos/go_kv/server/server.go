// Package server exposes a store over HTTP.
package server

import (
	"fmt"
	"net/http"

	kvcodec "github.com/example/kv/codec"
	"github.com/example/kv/store"
)

type Server struct{ S *store.Store }

func (h Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Path[1:]
	if r.Method == http.MethodPut {
		buf := make([]byte, r.ContentLength)
		r.Body.Read(buf)
		h.S.Put(key, buf)
		return
	}
	body, err := kvcodec.Encode(h.S, []string{key})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	fmt.Fprintf(w, "%s\n", body)
}
