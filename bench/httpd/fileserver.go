// The Go twin of examples/httpd for bench/httpd/run: net/http's FileServer
// over ROOT (run with GOMAXPROCS=1).
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: fileserver ADDR ROOT")
	}
	log.Fatal(http.ListenAndServe(os.Args[1], http.FileServer(http.Dir(os.Args[2]))))
}
