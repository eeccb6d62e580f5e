// Command fn is the trivial function every setup in the benchmark calls: an
// HTTP server on $PORT that echoes the request body. With -stdio it copies
// stdin to stdout once instead (the stdio protocol).
package main

import (
	"flag"
	"io"
	"net/http"
	"os"
)

func main() {
	stdio := flag.Bool("stdio", false, "copy stdin to stdout and exit")
	flag.Parse()
	if *stdio {
		io.Copy(os.Stdout, os.Stdin)
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	})
	host := "127.0.0.1"
	if os.Getenv("FN_ALL_INTERFACES") == "1" { // inside a container image
		host = ""
	}
	http.ListenAndServe(host+":"+os.Getenv("PORT"), nil)
}
