package forensics

// checkKprobes is not built yet.
func checkKprobes(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
