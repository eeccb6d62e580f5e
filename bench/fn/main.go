// Command fn is the trivial function every setup in the benchmark calls: an
// HTTP server on $PORT that echoes the request body. With -stdio it copies
// stdin to stdout once instead (the stdio protocol). FN_SERVICE_TIME (a
// duration) makes each request take that long, as the scaling scenario's
// function does.
package main

import (
	"flag"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	stdio := flag.Bool("stdio", false, "copy stdin to stdout and exit")
	flag.Parse()
	if *stdio {
		io.Copy(os.Stdout, os.Stdin)
		return
	}
	service, _ := time.ParseDuration(os.Getenv("FN_SERVICE_TIME"))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if service > 0 {
			time.Sleep(service)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	})
	host := "127.0.0.1"
	if os.Getenv("FN_ALL_INTERFACES") == "1" { // inside a container image
		host = ""
	}
	http.ListenAndServe(host+":"+os.Getenv("PORT"), nil)
}
