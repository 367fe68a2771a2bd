package forensics

// checkIDT is not built yet.
func checkIDT(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
