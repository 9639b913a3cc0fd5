// Command bare is the baseline of bench/cspload: a plain net/http handler
// for POST /csp-report that does the least an honest receiver must do, so
// Vigil's throughput can be compared against it. It reads the body with a
// 64 KiB limit (413 past it), decodes the legacy report-uri JSON into a
// struct with encoding/json (400 if malformed) and answers 204. It stores
// nothing.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"time"
)

const bodyLimit = 64 << 10

type report struct {
	CSPReport struct {
		DocumentURI        string `json:"document-uri"`
		Referrer           string `json:"referrer"`
		ViolatedDirective  string `json:"violated-directive"`
		EffectiveDirective string `json:"effective-directive"`
		OriginalPolicy     string `json:"original-policy"`
		Disposition        string `json:"disposition"`
		BlockedURI         string `json:"blocked-uri"`
		StatusCode         int    `json:"status-code"`
		ScriptSample       string `json:"script-sample"`
		SourceFile         string `json:"source-file"`
		LineNumber         int    `json:"line-number"`
		ColumnNumber       int    `json:"column-number"`
	} `json:"csp-report"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve POST /csp-report on")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/csp-report", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		if r.ContentLength > bodyLimit {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyLimit))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "reading body", http.StatusBadRequest)
			return
		}
		var rep report
		if err := json.Unmarshal(body, &rep); err != nil {
			http.Error(w, "malformed report", http.StatusBadRequest)
			return
		}
		if rep.CSPReport.DocumentURI == "" && rep.CSPReport.BlockedURI == "" {
			http.Error(w, `"csp-report" missing`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{
		Addr:              *listen,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	log.Fatal(srv.ListenAndServe())
}
