package forensics

// checkTaint is not built yet.
func checkTaint(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
