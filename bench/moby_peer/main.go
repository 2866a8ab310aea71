// The moby peer for layerfs' shapes bench (LAYERFS_BENCH_MOBY): moby's
// pkg/archive run with the arguments of bench/_shape_child.ts, one
// operation per process as a tool built on it would.
//
//	moby-peer apply <tar> <dir>        archive.Untar
//	moby-peer pack <dir> <out.tar>     archive.TarWithOptions, uncompressed
//	moby-peer changes <dir> <parent>   archive.ChangesDirs, prints the count
//
// Build it with Debian's Go and moby sources (no network beyond Debian's):
//
//	apt-get install golang-go golang-github-docker-docker-dev
//	cd bench/moby_peer
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/moby-peer .
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/docker/docker/pkg/archive"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: moby-peer apply <tar> <dir> | pack <dir> <out.tar> | changes <dir> <parent>")
		os.Exit(2)
	}
	mode, a, b := os.Args[1], os.Args[2], os.Args[3]
	var err error
	switch mode {
	case "apply":
		var f *os.File
		if f, err = os.Open(a); err == nil {
			err = archive.Untar(f, b, nil)
			f.Close()
		}
	case "pack":
		var rc io.ReadCloser
		if rc, err = archive.TarWithOptions(a, &archive.TarOptions{Compression: archive.Uncompressed}); err == nil {
			var o *os.File
			if o, err = os.Create(b); err == nil {
				_, err = io.Copy(o, rc)
				if cerr := o.Close(); err == nil {
					err = cerr
				}
			}
			rc.Close()
		}
	case "changes":
		var ch []archive.Change
		if ch, err = archive.ChangesDirs(a, b); err == nil {
			fmt.Println(len(ch))
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
