package loggen

// The site: a Django REST backend with a React front end and the Django
// admin, behind nginx, as shop.example.com. Everything here is printable
// ASCII without '"' or '\' and free of attack payloads; the tests check.

const origin = "https://shop.example.com"

// asset is a file nginx serves from disk.
type asset struct {
	path string
	size int32
}

// staticAssets are the React build's files; a landing page loads most.
var staticAssets = []asset{
	{"/static/js/main.8f3c2a1e.js", 534211},
	{"/static/css/main.5d1b9c47.css", 48712},
	{"/static/js/787.2e4f8a90.chunk.js", 18234},
	{"/static/js/453.a91c7d2b.chunk.js", 42110},
	{"/static/js/216.c03e55f1.chunk.js", 9876},
	{"/static/js/901.7b2d64ea.chunk.js", 77312},
	{"/static/css/787.41d0b3c9.chunk.css", 3120},
	{"/static/media/inter-latin.3a9f1e22.woff2", 48256},
	{"/static/media/logo.6ce24c58.svg", 2671},
}

// shellAssets are fetched by browsers around the app itself.
var shellAssets = []asset{
	{"/favicon.ico", 15086},
	{"/manifest.json", 492},
	{"/logo192.png", 5347},
}

// staleAssets are files of an earlier build that cached pages still ask
// for, and icons the site never had: ordinary 404s.
var staleAssets = []string{
	"/static/js/787.1d9e0c3a.chunk.js",
	"/static/js/main.b71f0e93.js",
	"/static/css/main.0c6e2d8a.css",
	"/apple-touch-icon.png",
	"/apple-touch-icon-precomposed.png",
	"/apple-touch-icon-120x120.png",
	"/browserconfig.xml",
}

// adminAssets are the Django admin's static files.
var adminAssets = []asset{
	{"/static/admin/css/base.css", 21207},
	{"/static/admin/css/dashboard.css", 441},
	{"/static/admin/css/responsive.css", 17740},
	{"/static/admin/css/nav_sidebar.css", 2694},
	{"/static/admin/js/nav_sidebar.js", 3063},
	{"/static/admin/js/theme.js", 1653},
}

// spaRoutes are the front end's routes; nginx answers all with index.html.
var spaRoutes = []string{"/", "/", "/products/", "/products/", "/cart/", "/orders/", "/account/", "/login", "/products/new/", "/help/"}

// indexSize is the size of the React build's index.html.
const indexSize = 2113

var categories = []string{"shoes", "shirts", "jackets", "bags", "accessories", "dresses", "jeans", "outdoor", "sale", "kids"}

var searchWords = []string{"sneakers", "linen", "wool", "black", "raincoat", "gift", "backpack", "boots", "summer", "organic", "red%20dress", "running%20shoes"}

var productSlugs = []string{"classic-sneaker", "linen-shirt", "wool-coat", "canvas-tote", "trail-boot", "denim-jacket", "silk-scarf", "rain-shell", "merino-beanie", "leather-belt"}

// externalReferrers send visitors to a landing page; "" is a direct visit.
var externalReferrers = []string{"", "", "", "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/", "https://www.facebook.com/", "https://t.co/", "https://www.instagram.com/"}

// browserAgents are current desktop and mobile browsers.
var browserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
}

// botAgents are crawlers that fetch pages, robots.txt and the sitemap.
var botAgents = []string{
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/124.0.6367.155 Safari/537.36",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
	"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
	"DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
}

// apiAgents are the shop's mobile apps and integrations using the API.
var apiAgents = []string{
	"ShopApp/3.2.1 (Android 14; Pixel 7) okhttp/4.12.0",
	"ShopApp/3.2.0 CFNetwork/1494.0.7 Darwin/23.4.0",
	"python-requests/2.31.0",
	"axios/1.6.8",
}

// loginPaths are the endpoints auth-bruteforce watches, exactly.
var loginPaths = []string{"/api/auth/login/", "/api/token/", "/accounts/login/", "/admin/login/", "/login"}
