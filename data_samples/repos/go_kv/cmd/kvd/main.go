// Command kvd serves a key-value store on :8080.
package main

import (
	"log"
	"net/http"

	"github.com/example/kv/server"
	"github.com/example/kv/store"
)

func main() {
	log.Fatal(http.ListenAndServe(":8080", server.Server{S: store.New()}))
}
