// hello-container is an http function shipped as a container image. In a
// container it listens on all interfaces, on $PORT (8080).
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
		fmt.Fprintf(w, "Hello from a container, %s!\n", name)
	})
	log.Printf("hello-container listening on :%s", os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), nil))
}
