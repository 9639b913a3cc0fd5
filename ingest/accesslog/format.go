package accesslog

import (
	"fmt"
	"strconv"
)

// Format names an access log line format.
type Format uint8

// The formats the parser understands. FormatUnknown asks the Parser to pick
// per line (see NewParser).
const (
	// FormatUnknown means the format is not known; NewParser then decides
	// per line, and DetectFormat returns it when no sample line parses.
	FormatUnknown Format = iota
	// FormatNginxCombined is nginx's predefined "combined" log_format.
	FormatNginxCombined
	// FormatNginxMain is the "main" log_format of the stock nginx.conf:
	// combined plus a quoted $http_x_forwarded_for field.
	FormatNginxMain
	// FormatApacheCombined is Apache httpd's "combined" LogFormat.
	FormatApacheCombined
	// FormatNginxJSON is an nginx log_format with escape=json writing one
	// JSON object per line, keyed by nginx variable names.
	FormatNginxJSON
)

var formatNames = [...]string{
	FormatUnknown:        "unknown",
	FormatNginxCombined:  "nginx-combined",
	FormatNginxMain:      "nginx-main",
	FormatApacheCombined: "apache-combined",
	FormatNginxJSON:      "nginx-json",
}

// String returns the configuration name of f, such as "nginx-combined", or
// "unknown" for FormatUnknown.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat returns the Format whose String is s. It also accepts "auto"
// for FormatUnknown, the usual configuration spelling of "detect it". The
// error names the bad value and the accepted ones.
func ParseFormat(s string) (Format, error) {
	if s == "auto" {
		return FormatUnknown, nil
	}
	for f, name := range formatNames {
		if s == name {
			return Format(f), nil
		}
	}
	return FormatUnknown, fmt.Errorf("unknown access log format %q (want auto, nginx-combined, nginx-main, apache-combined or nginx-json)", s)
}

// Dataset returns the ECS event.dataset of events parsed in format f:
// "apache.access" for FormatApacheCombined and "nginx.access" for the nginx
// formats. It returns "" for FormatUnknown, whose parser sets the dataset of
// whichever format each line parsed as.
func (f Format) Dataset() string {
	switch f {
	case FormatNginxCombined, FormatNginxMain, FormatNginxJSON:
		return datasetNginx
	case FormatApacheCombined:
		return datasetApache
	default:
		return ""
	}
}

const (
	datasetNginx  = "nginx.access"
	datasetApache = "apache.access"
)
