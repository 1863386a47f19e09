// Package examples holds the example pipelines and the demo's schemas:
// elmis-v2.sql (an eLMIS v2-like source with seed data), openlmis-v3.sql
// (an OpenLMIS v3-like destination) and elmis-to-v3.yaml (the source and
// pipelines between them). `sluice demo` runs them from FS.
package examples

import "embed"

// FS holds every file of this directory.
//
//go:embed *.yaml *.sql
var FS embed.FS
