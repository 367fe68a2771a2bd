package forensics

// checkFtrace is not built yet.
func checkFtrace(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
