/* files — making what was written to a file, and its name, durable. */
#pragma once

/* fsync of path (a file or a directory): 0, or -1 with errno. */
int files_sync(const char *path);
/* fsync of the directory that holds path's entry: a file just created,
 * linked or renamed there survives a crash once it returns 0. */
int files_sync_dir_of(const char *path);
