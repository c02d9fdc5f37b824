//! Store backends for `ticketing-core` (in progress).
