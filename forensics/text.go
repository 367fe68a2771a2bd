package forensics

// checkText is not built yet.
func checkText(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
