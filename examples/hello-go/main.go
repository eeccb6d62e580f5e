// hello-go greets whoever is named in the request body.
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		name, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
		if len(name) == 0 {
			name = []byte("world")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello, %s!\n", name)
	})
	log.Printf("hello-go listening on :%s", os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
