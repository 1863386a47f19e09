package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// client is the CLI's thin client of the REST API.
type client struct {
	server, token, output string
}

func (c *client) register(cmd *cobra.Command) {
	def := os.Getenv("SLUICE_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&c.server, "server", def, "Sluice API base URL (env SLUICE_SERVER)")
	cmd.Flags().StringVar(&c.token, "token", os.Getenv("SLUICE_TOKEN"), "API bearer token (env SLUICE_TOKEN)")
	cmd.Flags().StringVarP(&c.output, "output", "o", "table", "output: table or json")
}

// apiError is a problem document returned by the server.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Path    string `json:"path"`
		Message string `json:"message"`
		Line    int    `json:"line"`
	} `json:"errors"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d)", e.Title, e.Status)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		if fe.Path != "" {
			b.WriteString(fe.Path + ": ")
		}
		b.WriteString(fe.Message)
		if fe.Line > 0 {
			fmt.Fprintf(&b, " (line %d)", fe.Line)
		}
	}
	return b.String()
}

// do sends a request and returns the body of a 2xx answer.
func (c *client) do(ctx context.Context, method, path, ctype string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		pe := &apiError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		_ = json.Unmarshal(out, pe)
		return nil, pe
	}
	return out, nil
}

func (c *client) printJSON(raw []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") == nil {
		raw = buf.Bytes()
	}
	fmt.Println(strings.TrimRight(string(raw), "\n"))
}

// clientCommands are the commands that talk to a running server.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{newApplyCmd(), newGetCmd(), newStatusCmd(), newDeleteCmd(),
		newActionCmd(spec.KindSource), newActionCmd(spec.KindPipeline)}
}

func newApplyCmd() *cobra.Command {
	c := &client{}
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR ...",
		Short: "Create or replace sources and pipelines on a running server",
		Long: `Validates the spec files locally, then PUTs every spec to the server, sources
first. A spec that did not change keeps its version; a changed one becomes a new
version and its source or pipeline restarts with it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("give spec files with -f")
			}
			specs, err := spec.ParseFiles(files...)
			if err != nil {
				return err
			}
			sort.SliceStable(specs, func(i, j int) bool { return specs[i].Kind() == spec.KindSource && specs[j].Kind() != spec.KindSource })
			for _, sp := range specs {
				js, err := json.Marshal(sp)
				if err != nil {
					return err
				}
				body := append([]byte(`{"kind": "`+string(sp.Kind())+`", `), js[1:]...)
				path := "/v1/" + plural(sp.Kind()) + "/" + sp.Ident()
				out, err := c.do(cmd.Context(), http.MethodPut, path, "application/json", body)
				if err != nil {
					return fmt.Errorf("%s %q: %w", sp.Kind(), sp.Ident(), err)
				}
				var res struct {
					Version int `json:"version"`
				}
				_ = json.Unmarshal(out, &res)
				fmt.Printf("%s/%s: version %d\n", strings.ToLower(string(sp.Kind())), sp.Ident(), res.Version)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "file", "f", nil, "spec files or directories (repeatable)")
	c.register(cmd)
	return cmd
}

func plural(k spec.Kind) string {
	if k == spec.KindSource {
		return "sources"
	}
	return "pipelines"
}

func kindOf(arg string) (spec.Kind, error) {
	switch strings.TrimSuffix(strings.ToLower(arg), "s") {
	case "source":
		return spec.KindSource, nil
	case "pipeline":
		return spec.KindPipeline, nil
	}
	return "", fmt.Errorf("%q: want sources or pipelines", arg)
}

// statusLine is the part of a resource or status the tables show.
type statusLine struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Version int    `json:"version"`
	Desired string `json:"desired_state"`
	State   string `json:"state"`
	Status  *struct {
		State       string      `json:"state"`
		Since       time.Time   `json:"since"`
		Restarts    int         `json:"restarts"`
		LastError   string      `json:"last_error"`
		LastErrorAt *time.Time  `json:"last_error_at"`
		Resnapshot  *resnapLine `json:"resnapshot"`
	} `json:"status"`
	Since      time.Time   `json:"since"`
	Restarts   int         `json:"restarts"`
	LastError  string      `json:"last_error"`
	ErrorAt    *time.Time  `json:"last_error_at"`
	Resnapshot *resnapLine `json:"resnapshot"`
}

// resnapLine is a source's latest resnapshot request as a status shows it.
type resnapLine struct {
	ID          int64      `json:"id"`
	Tables      []string   `json:"tables"`
	State       string     `json:"state"`
	RequestedAt time.Time  `json:"requested_at"`
	CompletedAt *time.Time `json:"completed_at"`
	CancelledAt *time.Time `json:"cancelled_at"`
}

func (r *resnapLine) String() string {
	s := fmt.Sprintf("resnapshot %d of %s: %s", r.ID, strings.Join(r.Tables, ", "), r.State)
	if r.State == "done" && r.CompletedAt != nil {
		return s + " at " + r.CompletedAt.Local().Format(time.DateTime)
	}
	if r.State == "cancelled" && r.CancelledAt != nil {
		return s + " at " + r.CancelledAt.Local().Format(time.DateTime)
	}
	return s + ", requested " + time.Since(r.RequestedAt).Round(time.Second).String() + " ago"
}

func printTable(lines []statusLine) {
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tVERSION\tDESIRED\tSTATE\tSINCE\tRESTARTS\tLAST ERROR")
	var notes []string
	for _, l := range lines {
		state, since, restarts, lastErr, at, rs := l.State, l.Since, l.Restarts, l.LastError, l.ErrorAt, l.Resnapshot
		if l.Status != nil {
			state, since, restarts, lastErr, at, rs = l.Status.State, l.Status.Since, l.Status.Restarts, l.Status.LastError, l.Status.LastErrorAt, l.Status.Resnapshot
		}
		if rs != nil {
			notes = append(notes, strings.ToLower(l.Kind)+"/"+l.Name+": "+rs.String())
		}
		if state == "" {
			state = "-"
		}
		sinceText := "-"
		if !since.IsZero() {
			sinceText = time.Since(since).Round(time.Second).String() + " ago"
		}
		if lastErr != "" && at != nil {
			lastErr = at.Local().Format("15:04:05") + " " + lastErr
		}
		if len(lastErr) > 100 {
			lastErr = lastErr[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", strings.ToLower(l.Kind), l.Name, l.Version, l.Desired, state, sinceText, restarts, lastErr)
	}
	_ = tw.Flush()
	if len(notes) > 0 {
		fmt.Println()
		for _, n := range notes {
			fmt.Println(n)
		}
	}
}

func newGetCmd() *cobra.Command {
	c := &client{}
	cmd := &cobra.Command{
		Use:   "get sources|pipelines [NAME]",
		Short: "List sources or pipelines, or show one with its spec",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := kindOf(args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 { // one resource, with its spec: JSON
				out, err := c.do(cmd.Context(), http.MethodGet, "/v1/"+plural(kind)+"/"+args[1], "", nil)
				if err == nil {
					c.printJSON(out)
				}
				return err
			}
			return c.list(cmd.Context(), "/v1/"+plural(kind))
		},
	}
	c.register(cmd)
	return cmd
}

// list GETs a list of resources or statuses and prints it as a table, or
// as JSON with -o json.
func (c *client) list(ctx context.Context, path string) error {
	out, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	if c.output == "json" {
		c.printJSON(out)
		return nil
	}
	var lines []statusLine
	if err := json.Unmarshal(out, &lines); err != nil {
		return err
	}
	printTable(lines)
	return nil
}

func newStatusCmd() *cobra.Command {
	c := &client{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the state of every source and pipeline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.list(cmd.Context(), "/v1/status")
		},
	}
	c.register(cmd)
	return cmd
}

func newDeleteCmd() *cobra.Command {
	c := &client{}
	cmd := &cobra.Command{
		Use:   "delete source|pipeline NAME",
		Short: "Stop and delete a source or pipeline (a source's slot and publication stay)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := kindOf(args[0])
			if err != nil {
				return err
			}
			if _, err := c.do(cmd.Context(), http.MethodDelete, "/v1/"+plural(kind)+"/"+args[1], "", nil); err != nil {
				return err
			}
			fmt.Printf("%s/%s deleted\n", strings.ToLower(string(kind)), args[1])
			return nil
		},
	}
	c.register(cmd)
	return cmd
}

// newActionCmd is `sluice source|pipeline ACTION NAME`.
func newActionCmd(kind spec.Kind) *cobra.Command {
	c := &client{}
	var tables []string
	var from, timestamp, specFile string
	var offsets []string
	var clear, cancel bool
	var ver int
	actions := "start|stop|pause|resume|restart|restore|validate"
	if kind == spec.KindPipeline {
		actions += "|clear|replay|reprocess"
	} else {
		actions += "|resnapshot"
	}
	name := strings.ToLower(string(kind))
	cmd := &cobra.Command{
		Use:   name + " " + actions + " NAME",
		Short: "Act on a " + name + " of a running server",
		Long: `Actions:
  start, resume   run it (desired state running)
  stop, pause     stop it (a paused pipeline lets Kafka buffer; the source keeps capturing)
  restart         stop and start it again with the same spec
  restore         make --version N the current spec again (as a new version)
  validate        dry-run the stored spec, or --spec-file, against the live databases` + map[bool]string{false: `
  resnapshot      read --tables again (op r) while the other tables keep streaming;
                  the request is stored first, so a restarted server completes it.
                  Asking again for the same tables before it is done is the same
                  request. sluice status shows its progress. With --cancel: cancel
                  the request that is not done; the source streams on without it`, true: `
  clear           empty the destination tables it writes (or --tables) and reset its
                  offsets; only while it is stopped or paused
  replay          stop it, optionally --clear, move its offsets (--from earliest,
                  --from timestamp --timestamp T, --from offsets --offset topic:partition:offset)
                  and start it again
  reprocess       run the dead letters through the current stages and sink
                  (once their cause is fixed); it stops meanwhile`}[kind == spec.KindPipeline],
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			act, target := args[0], args[1]
			path := "/v1/" + plural(kind) + "/" + target + "/" + act
			method := http.MethodPost
			var body []byte
			ctype := "application/json"
			if cancel && act != "resnapshot" {
				return errors.New("--cancel goes with resnapshot only")
			}
			switch act {
			case "resnapshot":
				if cancel {
					if len(tables) > 0 {
						return errors.New("resnapshot --cancel cancels the pending request: give no --tables")
					}
					method, ctype = http.MethodDelete, ""
					break
				}
				body, _ = json.Marshal(map[string]any{"tables": tables})
			case "restore":
				body, _ = json.Marshal(map[string]int{"version": ver})
			case "clear":
				body, _ = json.Marshal(map[string]any{"tables": tables})
			case "replay":
				req := map[string]any{"from": from, "clear": clear}
				if timestamp != "" {
					req["timestamp"] = timestamp
				}
				if len(tables) > 0 {
					req["tables"] = tables
				}
				var offs []map[string]any
				for _, o := range offsets {
					i, j := strings.LastIndex(o, ":"), -1
					if i > 0 {
						j = strings.LastIndex(o[:i], ":")
					}
					if j <= 0 {
						return fmt.Errorf("--offset %q: want topic:partition:offset", o)
					}
					p, err1 := strconv.Atoi(o[j+1 : i])
					n, err2 := strconv.ParseInt(o[i+1:], 10, 64)
					if err1 != nil || err2 != nil {
						return fmt.Errorf("--offset %q: want topic:partition:offset", o)
					}
					offs = append(offs, map[string]any{"topic": o[:j], "partition": p, "offset": n})
				}
				if len(offs) > 0 {
					req["offsets"] = offs
				}
				body, _ = json.Marshal(req)
			case "validate":
				if specFile != "" {
					b, err := os.ReadFile(specFile)
					if err != nil {
						return err
					}
					body, ctype = b, "application/yaml"
					if strings.HasSuffix(specFile, ".json") {
						ctype = "application/json"
					}
				}
			}
			out, err := c.do(cmd.Context(), method, path, ctype, body)
			if err != nil {
				return err
			}
			if c.output == "json" {
				c.printJSON(out)
				return nil
			}
			var res struct {
				Result   string `json:"result"`
				Valid    *bool  `json:"valid"`
				Problems []struct {
					Path    string `json:"path"`
					Message string `json:"message"`
				} `json:"problems"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				return err
			}
			if res.Valid != nil {
				if *res.Valid {
					fmt.Printf("%s/%s: valid against the live databases\n", name, target)
					return nil
				}
				for _, p := range res.Problems {
					fmt.Printf("  %s: %s\n", p.Path, p.Message)
				}
				return fmt.Errorf("%s/%s: %d problems", name, target, len(res.Problems))
			}
			fmt.Printf("%s/%s: %s\n", name, target, res.Result)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&ver, "version", 0, "restore: the version to make current")
	fl.StringVar(&specFile, "spec-file", "", "validate: a spec file to validate instead of the stored spec")
	if kind == spec.KindSource {
		fl.StringSliceVar(&tables, "tables", nil, "resnapshot: the tables to read again, schema.table,...")
		fl.BoolVar(&cancel, "cancel", false, "resnapshot: cancel the request that is not done yet")
	}
	if kind == spec.KindPipeline {
		fl.StringSliceVar(&tables, "tables", nil, "clear, replay --clear: destination tables (default: those its stages write)")
		fl.StringVar(&from, "from", "earliest", "replay: earliest, timestamp or offsets")
		fl.StringVar(&timestamp, "timestamp", "", "replay --from timestamp: RFC 3339 time, e.g. 2026-11-23T10:00:00Z")
		fl.StringArrayVar(&offsets, "offset", nil, "replay --from offsets: topic:partition:offset (repeatable)")
		fl.BoolVar(&clear, "clear", false, "replay: empty the destination tables first")
	}
	c.register(cmd)
	return cmd
}
