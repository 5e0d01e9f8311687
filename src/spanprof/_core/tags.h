// Dynamic per-thread tags. Python sets a tag set for a thread ident (threading.get_ident(), i.e.
// pthread_self()); the signal handler finds its own entry through a fixed open-addressing table of
// seqlock-protected slots and records only the tag-set id. The drain resolves ids to strings.
// Replaced tag sets are freed only two drain generations later, after every record that could
// carry the old id has been consumed.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace spanprof {

using TagList = std::vector<std::pair<std::string, std::string>>;

// Writers are serialised by the caller (GIL) and an internal mutex. Returns false if the table is
// full. An empty list clears the thread's tags.
bool tags_set(uint64_t ident, TagList tags);
// handler-safe: the tag-set id for `ident`, 0 when none.
uint64_t tags_lookup_id(uint64_t ident);
// Drain: copies the tags of `id` into `out` (returns false when unknown).
bool tags_get(uint64_t id, TagList* out);
// Drain: clears tags of threads that no longer exist and frees retired sets older than 2 gens.
void tags_collect(const std::unordered_set<uint64_t>& alive_idents, uint64_t generation);
// fork child (after_fork_child, not the atfork handler): reinitialise the lock.
void tags_after_fork();

}  // namespace spanprof
