// What kvcache-admin prints, shared by its single-node commands (admin_cli.cc) and its
// cluster commands (admin_cluster.cc), so that both print the same fields the same way.
// Internal to kvcache-admin; docs/operations.md documents the formats.

#ifndef KVCACHE_SERVICES_ADMIN_FORMAT_H_
#define KVCACHE_SERVICES_ADMIN_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "kvcache/v1/cache.pb.h"

namespace kvcache {
namespace admin {

// "ram" or "disk".
const char* TierName(v1::Tier tier);
// Lower-case hex of raw bytes.
std::string Hex(const std::string& raw);
// "YYYY-MM-DD HH:MM:SS" local time, "-" for 0.
std::string FormatMicros(int64_t unix_micros);

// `stats --json`'s object: "ram", "disk" (every TierStats field), "lookups", "lookup_keys",
// "lookup_hits".
nlohmann::json StatsJson(const v1::GetStatsResponse& stats);
// `stats`'s text: the per-tier table, the disk trouble line if any, the lookups line.
void PrintStats(const v1::GetStatsResponse& stats, std::ostream& out);
// Adds every counter of `from` to `into` (all of GetStatsResponse's fields are counts).
void AddStats(const v1::GetStatsResponse& from, v1::GetStatsResponse* into);

// One block as `ls --json` and `inspect --json` print it.
nlohmann::json BlockJson(const v1::BlockInfo& block);
// `ls`'s header and one row.
void PrintListHeader(std::ostream& out);
void PrintListRow(const v1::BlockInfo& block, std::ostream& out);
// `inspect`'s text for one block.
void PrintInspect(const v1::BlockInfo& block, std::ostream& out);

// `config --json`'s object.
nlohmann::json ConfigJson(const v1::GetConfigResponse& config);
// `config`'s text: one "name value" line per field of ConfigJson.
void PrintConfig(const nlohmann::json& config, std::ostream& out);

// `kvcache-admin conflicts`: newest first.
nlohmann::json ConflictsJson(const v1::ListConflictsResponse& conflicts);
void PrintConflicts(const v1::ListConflictsResponse& conflicts, std::ostream& out);

}  // namespace admin
}  // namespace kvcache

#endif  // KVCACHE_SERVICES_ADMIN_FORMAT_H_
