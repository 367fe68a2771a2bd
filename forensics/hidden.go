package forensics

// checkModules is not built yet.
func checkModules(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
