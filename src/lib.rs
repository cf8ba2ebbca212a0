//! ferrosync: offline-first, local-first data layer for web apps (browser library).
