MARK = "real kapacitor.client"
