// Command vcsim serves govmomi's vCenter/ESXi simulator on loopback for copy-offload's tests.
//
// It is built in GOPATH mode against Debian's golang-github-vmware-govmomi-dev (no module proxy) by
// `scripts/peers.sh install vcsim`. Contract with co-testpeers: the first line on stdout is the SDK URL
// (https://127.0.0.1:<port>/sdk, no credentials); SIGTERM or SIGINT (or, with -exit-on-stdin-eof, the
// end of stdin) stops the server, removes the model's datastore directories and exits 0. Everything
// else goes to stderr.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

// methodDelays parses "Method:ms[,Method:ms...]" into the simulator's per-method delay table.
func methodDelays(spec string) (map[string]int, error) {
	delays := make(map[string]int)
	if spec == "" {
		return delays, nil
	}
	for _, entry := range strings.Split(spec, ",") {
		parts := strings.SplitN(strings.TrimSpace(entry), ":", 2)
		if len(parts) != 2 || parts[0] == "" {
			return nil, fmt.Errorf("-method-delay entry %q is not Method:milliseconds", entry)
		}
		ms, err := strconv.Atoi(parts[1])
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("-method-delay entry %q: %q is not a non-negative number of milliseconds", entry, parts[1])
		}
		delays[parts[0]] = ms
	}
	return delays, nil
}

func run() error {
	listen := flag.String("l", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	username := flag.String("username", "user", "the only user name Login accepts")
	password := flag.String("password", "pass", "the only password Login accepts")
	tlsCert := flag.String("tlscert", "", "PEM certificate to serve (requires -tlskey; default: Go's built-in localhost certificate)")
	tlsKey := flag.String("tlskey", "", "PEM private key for -tlscert")
	methodDelay := flag.String("method-delay", "", "per-method delays, e.g. RetrievePropertiesEx:3000,Login:100")
	delay := flag.Int("delay", 0, "delay in milliseconds applied to every SOAP call")
	esx := flag.Bool("esx", false, "simulate a standalone ESX host instead of a vCenter")
	traceFile := flag.String("trace-file", "", "append every SOAP request and response to this file")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "shut down when stdin closes (the parent holds the pipe, so vcsim cannot outlive it)")
	flag.Parse()

	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return fmt.Errorf("-tlscert and -tlskey must be given together")
	}
	delays, err := methodDelays(*methodDelay)
	if err != nil {
		return err
	}

	model := simulator.VPX()
	if *esx {
		model = simulator.ESX()
	}
	model.DelayConfig.Delay = *delay
	model.DelayConfig.MethodDelay = delays
	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the simulator inventory: %w", err)
	}
	defer model.Remove()

	if *traceFile != "" {
		f, err := os.OpenFile(*traceFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening -trace-file: %w", err)
		}
		defer f.Close()
		simulator.Trace = true
		simulator.TraceFile = f
	}

	tlsConfig := new(tls.Config)
	if *tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("loading -tlscert/-tlskey: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{pair}
	}
	model.Service.TLS = tlsConfig
	// A fresh Userinfo (never simulator.DefaultLogin) makes Login accept exactly these credentials;
	// with DefaultLogin the simulator accepts any non-empty user name and password.
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	model.Service.RegisterEndpoints = true

	server := model.Service.NewServer()
	defer server.Close()

	sdk := *server.URL
	sdk.User = nil
	if _, err := fmt.Fprintln(os.Stdout, sdk.String()); err != nil {
		return fmt.Errorf("writing the SDK URL to stdout: %w", err)
	}

	stop := make(chan string, 1)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() { stop <- (<-signals).String() + " received" }()
	if *stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop <- "stdin closed"
		}()
	}
	fmt.Fprintf(os.Stderr, "vcsim: %s, shutting down\n", <-stop)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "vcsim: %v\n", err)
		os.Exit(1)
	}
}
