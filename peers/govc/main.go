// Command govc is a small govc for copy-offload's lab conformance tests: the govc subcommands the tests
// run, each implemented with the same govmomi library calls govc makes (finder, lister, property
// collector, datastore browser tasks, /folder transfers, esxcli over ExecuteSoap).
//
// Debian's golang-github-vmware-govmomi-dev ships the library but not govc's own command tree, so this
// main is built in GOPATH mode against that library by `scripts/peers.sh install govc`, as peers/vcsim
// is. Connection settings come from the environment as for govc: GOVC_URL (https://host:port/sdk),
// GOVC_USERNAME, GOVC_PASSWORD, GOVC_TLS_CA_CERTS (a PEM file to trust) or GOVC_INSECURE=1.
//
// Commands: about; find [-type m|h|s|d|f|c] [path]; ls [path]; vm.info [-r] name; device.info -vm name;
// host.storage.info -host path; host.esxcli -host path <namespace words> <command> [--param value...];
// datastore.ls -ds name [path]; datastore.upload -ds name local remote; datastore.download -ds name
// remote local. Output is line-oriented "Key: value" text; errors go to stderr with exit status 1.
package main

import (
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func login(ctx context.Context) (*govmomi.Client, error) {
	raw := os.Getenv("GOVC_URL")
	if raw == "" {
		return nil, errors.New("GOVC_URL is not set")
	}
	u, err := soap.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("GOVC_URL %q: %w", raw, err)
	}
	u.User = url.UserPassword(os.Getenv("GOVC_USERNAME"), os.Getenv("GOVC_PASSWORD"))
	insecure := os.Getenv("GOVC_INSECURE") == "1" || os.Getenv("GOVC_INSECURE") == "true"
	sc := soap.NewClient(u, insecure)
	if ca := os.Getenv("GOVC_TLS_CA_CERTS"); ca != "" {
		if err := sc.SetRootCAs(ca); err != nil {
			return nil, fmt.Errorf("GOVC_TLS_CA_CERTS %q: %w", ca, err)
		}
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	if err := c.SessionManager.Login(ctx, u.User); err != nil {
		return nil, err
	}
	return c, nil
}

func finder(ctx context.Context, c *govmomi.Client) (*find.Finder, error) {
	f := find.NewFinder(c.Client, true)
	dc, err := f.DefaultDatacenter(ctx)
	if err != nil {
		return nil, err
	}
	f.SetDatacenter(dc)
	return f, nil
}

// parsed parses a command's flags and answers a finder on the default datacenter.
func parsed(ctx context.Context, c *govmomi.Client, fs *flag.FlagSet, args []string) (*find.Finder, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return finder(ctx, c)
}

func about(c *govmomi.Client) error {
	a := c.ServiceContent.About
	fmt.Printf("FullName:     %s\n", a.FullName)
	fmt.Printf("Name:         %s\n", a.Name)
	fmt.Printf("Vendor:       %s\n", a.Vendor)
	fmt.Printf("Version:      %s\n", a.Version)
	fmt.Printf("Build:        %s\n", a.Build)
	fmt.Printf("OS type:      %s\n", a.OsType)
	fmt.Printf("API type:     %s\n", a.ApiType)
	fmt.Printf("API version:  %s\n", a.ApiVersion)
	fmt.Printf("Product ID:   %s\n", a.ProductLineId)
	fmt.Printf("UUID:         %s\n", a.InstanceUuid)
	return nil
}

var typeLetters = map[string]string{
	"m": "VirtualMachine", "h": "HostSystem", "s": "Datastore", "d": "Datacenter",
	"f": "Folder", "c": "ComputeResource",
}

// find walks the inventory from path down with the lister, as govc find does, and prints each path.
func findCmd(ctx context.Context, c *govmomi.Client, args []string) error {
	fs := flag.NewFlagSet("find", flag.ContinueOnError)
	kind := fs.String("type", "", "m|h|s|d|f|c")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root := "/"
	if fs.NArg() > 0 {
		root = fs.Arg(0)
	}
	want := ""
	if *kind != "" {
		var ok bool
		if want, ok = typeLetters[*kind]; !ok {
			return fmt.Errorf("-type %q: use one of m h s d f c", *kind)
		}
	}
	f := find.NewFinder(c.Client, true)
	queue := []string{root}
	seen := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		children, err := f.ManagedObjectListChildren(ctx, p)
		if err != nil {
			var nf *find.NotFoundError
			if errors.As(err, &nf) {
				continue
			}
			return err
		}
		for _, e := range children {
			if seen[e.Path] {
				continue
			}
			seen[e.Path] = true
			kind := e.Object.Reference().Type
			if want == "" || kind == want {
				fmt.Println(e.Path)
			}
			// Like govc find, walk the inventory tree only: a host's or datastore's VMs are found in
			// their folder, not again under the host.
			switch kind {
			case "Folder", "Datacenter", "ComputeResource", "ClusterComputeResource":
				queue = append(queue, e.Path)
			}
		}
	}
	return nil
}

func ls(ctx context.Context, c *govmomi.Client, args []string) error {
	path := "/"
	if len(args) > 0 {
		path = args[0]
	}
	es, err := find.NewFinder(c.Client, true).ManagedObjectListChildren(ctx, path)
	if err != nil {
		return err
	}
	for _, e := range es {
		fmt.Println(e.Path)
	}
	return nil
}

func vmInfo(ctx context.Context, c *govmomi.Client, args []string) error {
	fs := flag.NewFlagSet("vm.info", flag.ContinueOnError)
	resources := fs.Bool("r", false, "show resource summary")
	f, err := parsed(ctx, c, fs, args)
	if err != nil {
		return err
	}
	for _, name := range fs.Args() {
		vm, err := f.VirtualMachine(ctx, name)
		if err != nil {
			return err
		}
		var m mo.VirtualMachine
		props := []string{"summary", "config.uuid", "config.instanceUuid", "runtime.host", "datastore"}
		if err := vm.Properties(ctx, vm.Reference(), props, &m); err != nil {
			return err
		}
		var host mo.HostSystem
		if m.Runtime.Host != nil {
			if err := property.DefaultCollector(c.Client).RetrieveOne(ctx, *m.Runtime.Host, []string{"name"}, &host); err != nil {
				return err
			}
		}
		fmt.Printf("Name:           %s\n", m.Summary.Config.Name)
		fmt.Printf("  Path:         %s\n", vm.InventoryPath)
		fmt.Printf("  UUID:         %s\n", m.Summary.Config.Uuid)
		fmt.Printf("  Instance UUID: %s\n", m.Summary.Config.InstanceUuid)
		fmt.Printf("  Power state:  %s\n", m.Summary.Runtime.PowerState)
		fmt.Printf("  Host:         %s\n", host.Name)
		fmt.Printf("  VMX:          %s\n", m.Summary.Config.VmPathName)
		if *resources {
			names := []string{}
			for _, ref := range m.Datastore {
				var ds mo.Datastore
				if err := property.DefaultCollector(c.Client).RetrieveOne(ctx, ref, []string{"name"}, &ds); err != nil {
					return err
				}
				names = append(names, ds.Name)
			}
			sort.Strings(names)
			fmt.Printf("  Datastore:    %s\n", strings.Join(names, ", "))
			fmt.Printf("  Disks:        %d\n", m.Summary.Config.NumVirtualDisks)
		}
	}
	return nil
}

func deviceInfo(ctx context.Context, c *govmomi.Client, args []string) error {
	fs := flag.NewFlagSet("device.info", flag.ContinueOnError)
	vmName := fs.String("vm", "", "virtual machine")
	f, err := parsed(ctx, c, fs, args)
	if err != nil {
		return err
	}
	vm, err := f.VirtualMachine(ctx, *vmName)
	if err != nil {
		return err
	}
	devices, err := vm.Device(ctx)
	if err != nil {
		return err
	}
	for _, d := range devices {
		dev := d.GetVirtualDevice()
		fmt.Printf("Name:           %s\n", devices.Name(d))
		fmt.Printf("  Type:         %s\n", devices.TypeName(d))
		if dev.DeviceInfo != nil {
			desc := dev.DeviceInfo.GetDescription()
			fmt.Printf("  Label:        %s\n", desc.Label)
			fmt.Printf("  Summary:      %s\n", desc.Summary)
		}
		if disk, ok := d.(*types.VirtualDisk); ok {
			if b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
				fmt.Printf("  File:         %s\n", b.GetVirtualDeviceFileBackingInfo().FileName)
			}
			fmt.Printf("  Capacity:     %d\n", disk.CapacityInBytes)
		}
	}
	return nil
}

func hostStorageInfo(ctx context.Context, c *govmomi.Client, args []string) error {
	fs := flag.NewFlagSet("host.storage.info", flag.ContinueOnError)
	hostPath := fs.String("host", "", "host system")
	f, err := parsed(ctx, c, fs, args)
	if err != nil {
		return err
	}
	host, err := f.HostSystem(ctx, *hostPath)
	if err != nil {
		return err
	}
	ss, err := host.ConfigManager().StorageSystem(ctx)
	if err != nil {
		return err
	}
	var m mo.HostStorageSystem
	if err := ss.Properties(ctx, ss.Reference(), []string{"storageDeviceInfo"}, &m); err != nil {
		return err
	}
	for _, l := range m.StorageDeviceInfo.ScsiLun {
		lun := l.GetScsiLun()
		capacity := int64(0)
		if disk, ok := l.(*types.HostScsiDisk); ok {
			capacity = disk.Capacity.Block * int64(disk.Capacity.BlockSize)
		}
		fmt.Printf("%s\t%s\t%s\t%d\n", lun.CanonicalName, lun.LunType, lun.Vendor, capacity)
	}
	return nil
}

func datastoreOf(ctx context.Context, c *govmomi.Client, fs *flag.FlagSet, args []string) (*object.Datastore, []string, error) {
	name := fs.String("ds", "", "datastore")
	f, err := parsed(ctx, c, fs, args)
	if err != nil {
		return nil, nil, err
	}
	ds, err := f.Datastore(ctx, *name)
	if err != nil {
		return nil, nil, err
	}
	return ds, fs.Args(), nil
}

// datastoreLs searches a folder with the datastore browser and waits for the task, as govc does.
func datastoreLs(ctx context.Context, c *govmomi.Client, args []string) error {
	ds, rest, err := datastoreOf(ctx, c, flag.NewFlagSet("datastore.ls", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	dir := ""
	if len(rest) > 0 {
		dir = rest[0]
	}
	browser, err := ds.Browser(ctx)
	if err != nil {
		return err
	}
	spec := types.HostDatastoreBrowserSearchSpec{
		MatchPattern: []string{"*"},
		Details:      &types.FileQueryFlags{FileType: true, FileSize: true, Modification: true},
	}
	task, err := browser.SearchDatastore(ctx, ds.Path(dir), &spec)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return err
	}
	res, ok := info.Result.(types.HostDatastoreBrowserSearchResults)
	if !ok {
		return fmt.Errorf("unexpected search result %T", info.Result)
	}
	for _, file := range res.File {
		fi := file.GetFileInfo()
		fmt.Printf("%s\t%d\n", fi.Path, fi.FileSize)
	}
	return nil
}

func datastoreUpload(ctx context.Context, c *govmomi.Client, args []string) error {
	ds, rest, err := datastoreOf(ctx, c, flag.NewFlagSet("datastore.upload", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return errors.New("usage: datastore.upload -ds name local remote")
	}
	return ds.UploadFile(ctx, rest[0], rest[1], &soap.DefaultUpload)
}

func datastoreDownload(ctx context.Context, c *govmomi.Client, args []string) error {
	ds, rest, err := datastoreOf(ctx, c, flag.NewFlagSet("datastore.download", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return errors.New("usage: datastore.download -ds name remote local")
	}
	return ds.DownloadFile(ctx, rest[0], rest[1], &soap.DefaultDownload)
}

func run(ctx context.Context, command string, args []string) error {
	c, err := login(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.SessionManager.Logout(ctx) }()
	switch command {
	case "about":
		return about(c)
	case "find":
		return findCmd(ctx, c, args)
	case "ls":
		return ls(ctx, c, args)
	case "vm.info":
		return vmInfo(ctx, c, args)
	case "device.info":
		return deviceInfo(ctx, c, args)
	case "host.storage.info":
		return hostStorageInfo(ctx, c, args)
	case "host.esxcli":
		return hostEsxcli(ctx, c, args)
	case "datastore.ls":
		return datastoreLs(ctx, c, args)
	case "datastore.upload":
		return datastoreUpload(ctx, c, args)
	case "datastore.download":
		return datastoreDownload(ctx, c, args)
	default:
		return fmt.Errorf("unknown command %q", command)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: govc <command> [flags] [args]")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "govc: %s\n", err)
		os.Exit(1)
	}
}

// ----- esxcli over ExecuteSoap (govc keeps this in its own tree, not in the library) -----

type soapArgument struct {
	Name string `xml:"name"`
	Val  string `xml:"val"`
}

type soapFault struct {
	FaultMsg    string `xml:"faultMsg"`
	FaultDetail string `xml:"faultDetail,omitempty"`
}

type soapResult struct {
	Response string     `xml:"response,omitempty"`
	Fault    *soapFault `xml:"fault,omitempty"`
}

type executeSoapRequest struct {
	This     types.ManagedObjectReference `xml:"_this"`
	Moid     string                       `xml:"moid"`
	Version  string                       `xml:"version"`
	Method   string                       `xml:"method"`
	Argument []soapArgument               `xml:"argument,omitempty"`
}

type executeSoapBody struct {
	Req *executeSoapRequest `xml:"urn:vim25 ExecuteSoap,omitempty"`
	Res *struct {
		Returnval *soapResult `xml:"urn:vim25 returnval"`
	} `xml:"urn:vim25 ExecuteSoapResponse,omitempty"`
	Fault_ *soap.Fault `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *executeSoapBody) Fault() *soap.Fault { return b.Fault_ }

type retrieveExecuterBody struct {
	Req *struct {
		This types.ManagedObjectReference `xml:"_this"`
	} `xml:"urn:vim25 RetrieveManagedMethodExecuter,omitempty"`
	Res *struct {
		Returnval *types.ManagedObjectReference `xml:"urn:vim25 returnval"`
	} `xml:"urn:vim25 RetrieveManagedMethodExecuterResponse,omitempty"`
	Fault_ *soap.Fault `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *retrieveExecuterBody) Fault() *soap.Fault { return b.Fault_ }

// node is a generic XML element of an esxcli answer.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n node) child(name string) *node {
	for i := range n.Children {
		if n.Children[i].XMLName.Local == name {
			return &n.Children[i]
		}
	}
	return nil
}

func executeSoap(ctx context.Context, c *vim25.Client, mme types.ManagedObjectReference, moid, method string, args []soapArgument) (*node, error) {
	req := executeSoapBody{Req: &executeSoapRequest{This: mme, Moid: moid, Version: "urn:vim25/5.0", Method: method, Argument: args}}
	var res executeSoapBody
	if err := c.RoundTrip(ctx, &req, &res); err != nil {
		return nil, err
	}
	if res.Res == nil || res.Res.Returnval == nil {
		return nil, errors.New("ExecuteSoap returned nothing")
	}
	if f := res.Res.Returnval.Fault; f != nil {
		return nil, fmt.Errorf("%s", f.FaultMsg)
	}
	var doc node
	if err := xml.Unmarshal([]byte(res.Res.Returnval.Response), &doc); err != nil {
		return nil, fmt.Errorf("esxcli answer: %w", err)
	}
	return &doc, nil
}

func fragment(name, value string) soapArgument {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(value))
	return soapArgument{Name: name, Val: fmt.Sprintf("<%s>%s</%s>", name, b.String(), name)}
}

// hostEsxcli runs `host.esxcli -host path <ns words> <command> [--param value...]`: the namespace's
// CLIInfo maps the command-line aliases to parameter names, then the command runs on its handler.
func hostEsxcli(ctx context.Context, c *govmomi.Client, args []string) error {
	fs := flag.NewFlagSet("host.esxcli", flag.ContinueOnError)
	hostPath := fs.String("host", "", "host system")
	f, err := parsed(ctx, c, fs, args)
	if err != nil {
		return err
	}
	words := fs.Args()
	if len(words) > 0 && words[0] == "--" {
		words = words[1:]
	}
	split := len(words)
	for i, w := range words {
		if strings.HasPrefix(w, "-") {
			split = i
			break
		}
	}
	if split < 2 {
		return errors.New("usage: host.esxcli -host path <namespace words> <command> [--param value...]")
	}
	namespace := strings.Join(words[:split-1], ".")
	command := words[split-1]
	host, err := f.HostSystem(ctx, *hostPath)
	if err != nil {
		return err
	}
	req := retrieveExecuterBody{}
	req.Req = &struct {
		This types.ManagedObjectReference `xml:"_this"`
	}{This: host.Reference()}
	var res retrieveExecuterBody
	if err := c.RoundTrip(ctx, &req, &res); err != nil {
		return err
	}
	if res.Res == nil || res.Res.Returnval == nil {
		return errors.New("RetrieveManagedMethodExecuter returned nothing")
	}
	mme := *res.Res.Returnval
	info, err := executeSoap(ctx, c.Client, mme, "ha-dynamic-type-manager-local-cli-cliinfo", "vim.CLIInfo.FetchCLIInfo",
		[]soapArgument{fragment("typeName", "vim.EsxCLI."+namespace)})
	if err != nil {
		return fmt.Errorf("esxcli %s: %w", namespace, err)
	}
	aliases := map[string]string{}
	found := false
	for _, m := range info.Children {
		if m.XMLName.Local != "method" || m.child("name") == nil || m.child("name").Text != command {
			continue
		}
		found = true
		for _, p := range m.Children {
			if p.XMLName.Local != "param" {
				continue
			}
			for _, a := range p.Children {
				if a.XMLName.Local == "aliases" {
					aliases[a.Text] = p.child("name").Text
				}
			}
		}
	}
	if !found {
		return fmt.Errorf("esxcli %s has no command %s", namespace, command)
	}
	var params []soapArgument
	rest := words[split:]
	for i := 0; i < len(rest); i++ {
		flagWord, value := rest[i], ""
		if eq := strings.Index(flagWord, "="); eq > 0 {
			flagWord, value = flagWord[:eq], flagWord[eq+1:]
		} else if i+1 < len(rest) {
			i++
			value = rest[i]
		}
		name, ok := aliases[flagWord]
		if !ok {
			return fmt.Errorf("esxcli %s %s: unknown option %s", namespace, command, flagWord)
		}
		params = append(params, fragment(name, value))
	}
	moid := "ha-cli-handler-" + strings.ReplaceAll(namespace, ".", "-")
	doc, err := executeSoap(ctx, c.Client, mme, moid, "vim.EsxCLI."+namespace+"."+command, params)
	if err != nil {
		return err
	}
	printAnswer(os.Stdout, doc)
	return nil
}

// printAnswer prints one "Key: value" line per field, rows separated by a blank line, or the value.
func printAnswer(w io.Writer, doc *node) {
	rows := []node{*doc}
	if len(doc.Children) > 0 && doc.Children[0].XMLName.Local == "DataObject" {
		rows = doc.Children
	}
	for i, row := range rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if len(row.Children) == 0 {
			fmt.Fprintln(w, strings.TrimSpace(row.Text))
			continue
		}
		for _, field := range row.Children {
			fmt.Fprintf(w, "%s: %s\n", field.XMLName.Local, strings.TrimSpace(field.Text))
		}
	}
}
