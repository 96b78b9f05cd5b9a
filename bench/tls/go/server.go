// server - the Go peer of bench/tls: crypto/tls over TCP, standard library
// only. It speaks the same tiny protocol as bench/tls/tlsserver and
// `openssl s_server -WWW`: one request "GET /NAME HTTP/1.0\r\n\r\n", the
// answer "HTTP/1.0 200 ok\r\n\r\n" + the file ROOT/NAME, then close.
//
//	GOMAXPROCS=1 server -cert C -key K -root DIR [-addr 127.0.0.1:0]
//
// Prints "PORT n" once it listens. Session tickets on (Go's default), TLS
// 1.2 minimum; the client chooses version, suite and group.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
)

func serve(c net.Conn, cfg *tls.Config, root string) {
	defer c.Close()
	t := tls.Server(c, cfg)
	if err := t.Handshake(); err != nil {
		return
	}
	r := bufio.NewReader(t)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	for { // the rest of the head, up to the empty line
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if l == "\r\n" || l == "\n" {
			break
		}
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "GET" {
		return
	}
	name := filepath.Join(root, filepath.Clean("/"+f[1]))
	file, err := os.Open(name)
	if err != nil {
		io.WriteString(t, "HTTP/1.0 404 not found\r\n\r\n")
		t.Close()
		return
	}
	defer file.Close()
	if _, err := io.WriteString(t, "HTTP/1.0 200 ok\r\n\r\n"); err != nil {
		return
	}
	if _, err := io.Copy(t, file); err != nil {
		return
	}
	t.Close() // close_notify, then the socket
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	certFile := flag.String("cert", "", "certificate chain (PEM)")
	keyFile := flag.String("key", "", "private key (PEM)")
	root := flag.String("root", ".", "directory of the files served")
	flag.Parse()
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, cfg, *root)
	}
}
