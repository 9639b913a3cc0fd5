package loggen

import (
	"strings"
	"sync"
)

// scanWords are the stems of the scanners' wordlist, in the spirit of
// SecLists' common.txt. None carries an attack payload: a scanner fires
// http-404-scan and nothing else (the tests check).
var scanWords = []string{
	"admin", "administrator", "admin.php", "admin-console", "adminer.php", "api", "api-docs", "app",
	"backup", "backups", "bak", "beta", "bin", "blog", "cache", "cgi-bin", "cms", "config",
	"configuration", "console", "core", "cpanel", "cron", "dashboard", "data", "database", "db",
	"debug", "demo", "deploy", "dev", "dist", "docs", "download", "downloads", "dump", "editor",
	"env", "error", "errors", "export", "files", "forum", "ftp", "graphql", "home", "images",
	"import", "include", "includes", "index.php", "info.php", "install", "jenkins", "lib", "local",
	"log", "logs", "mail", "manage", "manager", "members", "misc", "monitor", "mysql", "new", "old",
	"panel", "phpinfo.php", "phpmyadmin", "pma", "portal", "private", "prod", "public", "register",
	"release", "remote", "reports", "root", "server-status", "server-info", "service", "setup",
	"shell", "site", "sql", "staging", "stats", "status", "storage", "swagger", "swagger-ui",
	"system", "temp", "test", "tests", "tmp", "tools", "upload", "uploads", "user", "users",
	"v1", "v2", "vendor", "web", "webadmin", "wordpress", "wp", "wp-admin", "wp-content",
	"wp-includes", "wp-login.php", "wp-config.php", "xmlrpc.php", "actuator", "actuator/health",
	"actuator/env", "solr", "console/login", "manager/html", "jmx-console", "telescope",
	"elmah.axd", "trace.axd", "web.config", "composer.json", "package.json", "docker-compose.yml",
	"Dockerfile", "settings.py", "local_settings.py", "id_rsa", "credentials", "secrets",
	"backup.zip", "backup.tar.gz", "site.zip", "www.zip", "db.sql", "dump.sql", "database.sql",
	".env", ".env.local", ".env.production", ".git/config", ".git/HEAD", ".svn/entries",
	".hg/hgrc", ".DS_Store", ".htaccess", ".htpasswd", ".aws/credentials", ".vscode/settings.json",
	".well-known/openid-configuration",
}

// scanExts are appended to each stem, as gobuster -x and ffuf -e do.
var scanExts = []string{"", "/", ".php", ".bak", ".old", ".zip", ".txt", ".json", ".xml", ".html", ".asp", ".jsp", ".swp", "~"}

// scanDirs are the directories a recursive scan descends into.
var scanDirs = []string{"", "/admin", "/api", "/backup", "/static", "/media", "/old", "/test", "/wp-content", "/includes"}

// wordlist is the scanners' path list: every directory, stem and
// extension, in that nesting. It is built once and never modified.
var wordlist = sync.OnceValue(func() []string {
	out := make([]string, 0, len(scanDirs)*len(scanWords)*len(scanExts))
	for _, d := range scanDirs {
		for _, w := range scanWords {
			for _, e := range scanExts {
				if e != "" && strings.HasPrefix(w, ".") && e != "/" && e != ".bak" && e != ".old" {
					continue
				}
				out = append(out, d+"/"+w+e)
			}
		}
	}
	return out
})

// sitePaths are the paths of the wordlist that exist on the site, with
// the answer and size a GET gets.
var sitePaths = map[string][2]int{
	"/admin":           {301, 0},
	"/admin/":          {302, 0},
	"/api":             {301, 0},
	"/api/":            {200, 1182},
	"/static/":         {403, 153},
	"/media/":          {403, 153},
	"/static":          {301, 169},
	"/media":           {301, 169},
	"/robots.txt":      {200, 67},
	"/sitemap.xml":     {200, 38211},
	"/favicon.ico":     {200, 15086},
	"/manifest.json":   {200, 492},
	"/login":           {200, indexSize},
	"/admin/login/":    {200, 4187},
	"/accounts/login/": {200, 3921},
	"/api/token/":      {405, 40},
}

// scanAnswer is the site's answer to a scanner's GET of path: what exists,
// 403 for dotfiles (nginx denies /\. except /.well-known), nginx's 404 for
// the static trees, Django's 404 for the rest.
func scanAnswer(path string) (status, size int) {
	if a, ok := sitePaths[path]; ok {
		return a[0], a[1]
	}
	switch {
	case strings.Contains(path, "/.") && !strings.HasPrefix(path, "/.well-known/"):
		return 403, 153
	case strings.HasPrefix(path, "/static/"), strings.HasPrefix(path, "/media/"):
		return 404, 153
	}
	return 404, 179
}
