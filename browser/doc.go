// Package browser holds the test that opens vmleak's HTML reports in a real
// browser (headless Chromium, driven by chromedp). It is a nested module,
// like fleet/, so that the browser driver's dependencies never reach the
// main module: vmleak itself stays pure Go with few dependencies.
package browser
