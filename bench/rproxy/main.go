// Command rproxy is the one-hop baseline: a minimal httputil.ReverseProxy
// with an idle pool large enough for the benchmark's concurrency.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	target := flag.String("target", "", "upstream URL")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}
	log.Fatal(http.ListenAndServe(*listen, p))
}
