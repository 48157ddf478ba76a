"""The Exchange on-premises connector (2016, 2019, Subscription Edition) through exchangelib:
`client` (the connection from the profile, the server's version, errors, batches),
`listing` (SyncFolderItems passes and their cursors), one module per kind (`events`,
`contacts`) and `mapping` between exchangelib's items and canonical ones."""
