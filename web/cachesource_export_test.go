package web

import "log/slog"

// CacheSource is what a Cache reads: what NewCacheOver needs of a store.
type CacheSource = cacheSource

// NewCacheOver is NewCache over src instead of a database, so that tests
// of the routes read an in-memory store through a Cache, as production
// reads the database through one.
func NewCacheOver(src CacheSource, log *slog.Logger) *Cache { return newCache(src, log) }
