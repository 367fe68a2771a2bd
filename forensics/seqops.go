package forensics

// checkSeqOps is not built yet.
func checkSeqOps(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
