// Command memcached-client is a memcached client that runs in a pod of the
// real node, as an application would: it looks up the servers of a server
// list by name with the pod's resolver (the cluster's DNS and the pod's
// search domains), sets keys hashed over them, reads every one back, and
// fails unless all come back.
//
//	memcached-client --servers cache-0.cache-headless.ns.svc:11211,cache-1.cache-headless.ns.svc:11211 --keys 1000
//
// It prints each server's address ("server <name> <ip:port>") and how many
// keys came back ("hits <n> of <keys>").
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func main() {
	servers := flag.String("servers", "", "The server list, comma-separated host:port.")
	keys := flag.Int("keys", 1000, "How many keys to set and read back.")
	flag.Parse()
	if err := run(strings.Split(*servers, ","), *keys); err != nil {
		fmt.Fprintf(os.Stderr, "memcached-client: %v\n", err)
		os.Exit(1)
	}
}

func run(servers []string, keys int) error {
	for _, server := range servers {
		addr, err := net.ResolveTCPAddr("tcp", server)
		if err != nil {
			return err
		}
		fmt.Printf("server %s %s\n", server, addr)
	}
	c := memcache.New(servers...)
	c.Timeout = 2 * time.Second
	for i := range keys {
		key := "key-" + strconv.Itoa(i)
		if err := c.Set(&memcache.Item{Key: key, Value: []byte(key)}); err != nil {
			return fmt.Errorf("set %s: %w", key, err)
		}
	}
	hits := 0
	for i := range keys {
		key := "key-" + strconv.Itoa(i)
		if item, err := c.Get(key); err == nil && string(item.Value) == key {
			hits++
		}
	}
	fmt.Printf("hits %d of %d\n", hits, keys)
	if hits != keys {
		return fmt.Errorf("%d keys did not come back", keys-hits)
	}
	return nil
}
