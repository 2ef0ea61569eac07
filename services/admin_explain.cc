#include "services/admin_explain.h"

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/block_keys.h"
#include "client/events_client.h"
#include "common/cli.h"
#include "common/key.h"
#include "worker/model.h"
#include "worker/tokenizer.h"

ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(std::string, namespace);

ABSL_FLAG(uint64_t, from, 0,
          "events: resume at this sequence (the server replays what its ring holds, or sends "
          "a snapshot); 0: from now");
ABSL_FLAG(bool, snapshot, false, "events: start with the blocks each node holds");
ABSL_FLAG(uint64_t, count, 0, "events: stop after this many events (0: never)");
ABSL_FLAG(std::string, model, "",
          "explain: model folder whose namespace to explain (as kvcache-worker computes it)");
ABSL_FLAG(uint32_t, block_size, 16, "explain: tokens per block (as kvcache-worker's)");
ABSL_FLAG(std::string, cache_salt, "", "explain: the tenant salt of the namespace, if any");
ABSL_FLAG(std::string, prompt_ids, "", "explain: the prompt as token ids, e.g. 1,2,3");
ABSL_FLAG(std::string, prompt_text, "", "explain: the prompt as text (the worker's tokens)");
ABSL_FLAG(std::string, prompt_file, "", "explain: the prompt as the text of a file");

namespace kvcache {
namespace {

using json = nlohmann::json;

std::string Hex(const std::string& raw) {
  if (raw.size() != kKeyBytes) return "";
  absl::StatusOr<Key> k = KeyFromBytes(raw, "key");
  return k.ok() ? KeyToHex(*k) : "";
}

const char* TierName(v1::Tier t) {
  switch (t) {
    case v1::TIER_RAM: return "ram";
    case v1::TIER_DISK: return "disk";
    default: return "all";
  }
}

const char* ReasonName(v1::RemovalReason r) {
  switch (r) {
    case v1::REMOVAL_REASON_EVICTED: return "evicted";
    case v1::REMOVAL_REASON_DEMOTED: return "demoted";
    case v1::REMOVAL_REASON_ERASED: return "erased";
    case v1::REMOVAL_REASON_CORRUPT: return "corrupt";
    default: return "unknown";
  }
}

const char* SnapshotReasonName(v1::SnapshotReason r) {
  switch (r) {
    case v1::SNAPSHOT_REASON_REQUESTED: return "requested";
    case v1::SNAPSHOT_REASON_NOT_IN_RING: return "not_in_ring";
    case v1::SNAPSHOT_REASON_LAGGED: return "lagged";
    default: return "unknown";
  }
}

std::string Time(int64_t unix_micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

json BlockJson(const v1::BlockStored& b) {
  json j{{"namespace", Hex(b.namespace_id())},
         {"key", Hex(b.key())},
         {"tier", TierName(b.tier())},
         {"payload_bytes", b.payload_bytes()}};
  if (!b.parent_key().empty()) j["parent"] = Hex(b.parent_key());
  if (b.token_ids_size() > 0) {
    j["token_ids"] = std::vector<uint32_t>(b.token_ids().begin(), b.token_ids().end());
  }
  return j;
}

std::string BlockText(const v1::BlockStored& b) {
  return absl::StrCat(TierName(b.tier()), " ns=", Hex(b.namespace_id()).substr(0, 16),
                      " key=", Hex(b.key()),
                      b.parent_key().empty() ? "" : " parent=" + Hex(b.parent_key()).substr(0, 16),
                      " ", b.payload_bytes(), " B",
                      b.token_ids_size() > 0 ? absl::StrCat(" tokens=", b.token_ids_size()) : "");
}

// ---------------------------------------------------------------------------------------
// events

class EventPrinter {
 public:
  EventPrinter(std::ostream& out, bool as_json, uint64_t count) 
      : out_(out), as_json_(as_json), count_(count) {}

  // Prints one message from `node` (empty for a single node). Returns false once --count
  // events are printed.
  bool Print(const std::string& node, const v1::SubscribeEventsResponse& m) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return false;
    const std::string prefix = node.empty() ? "" : node + " ";
    auto emit = [&](json j) {
      if (!node.empty()) j["node"] = node;
      out_ << j.dump() << "\n";
    };
    if (m.has_snapshot()) {
      const v1::SnapshotPart& s = m.snapshot();
      if (s.first()) {
        if (as_json_) {
          emit({{"type", "snapshot"}, {"reason", SnapshotReasonName(s.reason())},
                {"sequence", s.sequence()}, {"epoch", absl::StrCat(absl::Hex(m.epoch(), absl::kZeroPad16))}});
        } else {
          out_ << prefix << "snapshot (" << SnapshotReasonName(s.reason()) << ") as of #"
               << s.sequence() << "; the blocks held:\n";
        }
      }
      for (const v1::BlockStored& b : s.blocks()) {
        if (as_json_) {
          json j = BlockJson(b);
          j["type"] = "held";
          emit(j);
        } else {
          out_ << prefix << "  held " << BlockText(b) << "\n";
        }
      }
      if (s.last() && !as_json_) out_ << prefix << "end of snapshot; events follow\n";
      out_.flush();
      return true;
    }
    if (m.events_size() == 0) {  // The first message: where the stream starts.
      if (as_json_) {
        emit({{"type", "start"}, {"epoch", absl::StrCat(absl::Hex(m.epoch(), absl::kZeroPad16))},
              {"head_sequence", m.head_sequence()}, {"oldest_sequence", m.oldest_sequence()},
              {"version", m.version()}});
      } else {
        out_ << prefix << "# epoch " << absl::StrCat(absl::Hex(m.epoch(), absl::kZeroPad16))
             << ", head #"
             << m.head_sequence() << ", ring holds #" << m.oldest_sequence() << "..#"
             << m.head_sequence() << "\n";
      }
      out_.flush();
      return true;
    }
    for (const v1::KvEvent& e : m.events()) {
      json j;
      std::string text;
      switch (e.event_case()) {
        case v1::KvEvent::kStored:
          j = BlockJson(e.stored());
          j["type"] = "stored";
          text = "stored " + BlockText(e.stored());
          break;
        case v1::KvEvent::kRemoved:
          j = {{"type", "removed"},
               {"namespace", Hex(e.removed().namespace_id())},
               {"key", Hex(e.removed().key())},
               {"tier", TierName(e.removed().tier())},
               {"reason", ReasonName(e.removed().reason())}};
          text = absl::StrCat("removed ", TierName(e.removed().tier()), " ",
                              ReasonName(e.removed().reason()), " ns=",
                              Hex(e.removed().namespace_id()).substr(0, 16),
                              " key=", Hex(e.removed().key()));
          break;
        case v1::KvEvent::kCleared:
          j = {{"type", "cleared"}, {"tier", TierName(e.cleared().tier())}};
          text = absl::StrCat("cleared ", TierName(e.cleared().tier()));
          break;
        case v1::KvEvent::EVENT_NOT_SET:
          j = {{"type", "unknown"}};
          text = "unknown (a newer kind of event)";
          break;
      }
      if (as_json_) {
        j["sequence"] = e.sequence();
        j["time"] = Time(e.unix_micros());
        emit(j);
      } else {
        out_ << prefix << "#" << e.sequence() << " " << Time(e.unix_micros()) << " " << text
             << "\n";
      }
      if (count_ != 0 && ++printed_ >= count_) {
        done_ = true;
        out_.flush();
        return false;
      }
    }
    out_.flush();
    return true;
  }

 private:
  std::mutex mu_;
  std::ostream& out_;
  const bool as_json_;
  const uint64_t count_;
  uint64_t printed_ = 0;
  bool done_ = false;
};

}  // namespace

absl::Status RunEventsCommand(const std::vector<std::string>& nodes, bool cluster,
                              const TlsClientOptions& tls, absl::Duration timeout,
                              std::ostream& out) {
  v1::SubscribeEventsRequest request;
  request.set_version(1);
  request.set_from_sequence(absl::GetFlag(FLAGS_from));
  request.set_skip_snapshot(!absl::GetFlag(FLAGS_snapshot));
  if (cluster && request.from_sequence() != 0) {
    return UsageError("--from names one node's sequence: give --server one node");
  }
  EventPrinter printer(out, absl::GetFlag(FLAGS_json), absl::GetFlag(FLAGS_count));
  std::vector<absl::Status> results(nodes.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nodes.size(); ++i) {
    threads.emplace_back([&, i] {
      const std::string label = cluster ? nodes[i] : "";
      results[i] = SubscribeEvents(
          nodes[i], tls, request,
          [&](const v1::SubscribeEventsResponse& m) { return printer.Print(label, m); },
          timeout);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// explain

namespace {

// What one node holds and remembers.
struct NodeView {
  std::string address;
  BlockSet held;                          // From a snapshot.
  std::vector<v1::KvEvent> ring;          // Its ring, oldest first.
  int64_t ring_since_unix_micros = 0;     // The oldest event's time (0: empty ring).
};

absl::Status ReadNode(const std::string& address, const TlsClientOptions& tls,
                      absl::Duration timeout, NodeView* view) {
  view->address = address;
  v1::SubscribeEventsRequest snapshot;
  snapshot.set_version(1);
  absl::Status s = SubscribeEvents(
      address, tls, snapshot,
      [&](const v1::SubscribeEventsResponse& m) {
        view->held.Apply(m);
        return !view->held.synced();
      },
      timeout);
  if (!s.ok()) return s;
  v1::SubscribeEventsRequest ring;
  ring.set_version(1);
  ring.set_from_oldest(true);
  uint64_t head = 0;
  bool first = true;
  return SubscribeEvents(
      address, tls, ring,
      [&](const v1::SubscribeEventsResponse& m) {
        if (first) {
          first = false;
          head = m.head_sequence();
          return head != 0;
        }
        if (m.has_snapshot()) return false;  // The ring moved on while read: enough.
        for (const v1::KvEvent& e : m.events()) {
          if (view->ring.empty()) view->ring_since_unix_micros = e.unix_micros();
          view->ring.push_back(e);
          if (e.sequence() >= head) return false;
        }
        return true;
      },
      timeout);
}

struct Location {
  std::string node;
  v1::Tier tier;
};

// The last thing a node's ring says about (ns, key): its latest removal or clear after its
// latest store, if any.
struct LastRemoval {
  bool found = false;
  bool was_stored = false;  // The ring saw it stored.
  std::string reason;       // evicted, demoted, erased, corrupt, flushed.
  v1::Tier tier = v1::TIER_UNSPECIFIED;
  uint64_t sequence = 0;
  int64_t unix_micros = 0;
};

LastRemoval FindLastRemoval(const NodeView& node, const std::string& ns, const std::string& key) {
  LastRemoval r;
  absl::flat_hash_set<int> tiers_stored;  // Tiers it was stored in, since its last removal.
  for (const v1::KvEvent& e : node.ring) {
    if (e.has_stored() && e.stored().namespace_id() == ns && e.stored().key() == key) {
      r.was_stored = true;
      tiers_stored.insert(e.stored().tier());
    } else if (e.has_removed() && e.removed().namespace_id() == ns && e.removed().key() == key) {
      tiers_stored.erase(e.removed().tier());
      r = LastRemoval{true, true, ReasonName(e.removed().reason()), e.removed().tier(),
                      e.sequence(), e.unix_micros()};
    } else if (e.has_cleared() && tiers_stored.erase(e.cleared().tier()) > 0) {
      r = LastRemoval{true, true, "flushed", e.cleared().tier(), e.sequence(), e.unix_micros()};
    }
  }
  return r;
}

// The namespace description fields a server's namespace may differ in from ours, tried in
// turn: which block size, KV dtype and salt make `held` (an id the server holds).
struct NamespaceMatch {
  std::string id_hex;
  std::vector<std::string> differences;  // "block_size: 32 (you have 16)", ...
};

std::optional<NamespaceMatch> MatchNamespace(const NamespaceDescription& ours, const Key& held) {
  static const uint32_t kBlockSizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  static const char* kDtypes[] = {"f32", "f16", "bf16"};
  std::vector<std::string> salts = {ours.cache_salt};
  if (!ours.cache_salt.empty()) salts.push_back("");
  for (uint32_t bs : kBlockSizes) {
    for (const char* dtype : kDtypes) {
      for (const std::string& salt : salts) {
        NamespaceDescription d = ours;
        d.block_size = bs;
        d.dtype = dtype;
        d.cache_salt = salt;
        if (NamespaceId(d) != held) continue;
        NamespaceMatch m;
        m.id_hex = KeyToHex(held);
        if (bs != ours.block_size) {
          m.differences.push_back(
              absl::StrCat("block_size: ", bs, " (yours: ", ours.block_size, ")"));
        }
        if (d.dtype != ours.dtype) {
          m.differences.push_back(absl::StrCat("dtype: ", d.dtype, " (yours: ", ours.dtype, ")"));
        }
        if (salt != ours.cache_salt) {
          m.differences.push_back(absl::StrCat("cache_salt: '", salt, "' (yours: '",
                                               ours.cache_salt, "')"));
        }
        return m;
      }
    }
  }
  return std::nullopt;
}

// What a held namespace differs in when no variant of ours gives it.
constexpr char kUnmatched[] =
    "cache_salt, model or weights (no block size or dtype of this model with your salt "
    "gives it)";

absl::StatusOr<std::vector<uint32_t>> PromptTokens() {
  const std::string ids = absl::GetFlag(FLAGS_prompt_ids);
  const std::string text = absl::GetFlag(FLAGS_prompt_text);
  const std::string file = absl::GetFlag(FLAGS_prompt_file);
  if ((!ids.empty()) + (!text.empty()) + (!file.empty()) != 1) {
    return UsageError("explain needs one of --prompt-ids, --prompt-text, --prompt-file");
  }
  if (!ids.empty()) {
    absl::StatusOr<std::vector<uint32_t>> t = ParseTokenIds(ids);
    if (!t.ok()) return UsageError(absl::StrCat("--prompt-ids: ", t.status().message()));
    return t;
  }
  if (!text.empty()) return TokenizeBytes(text);
  std::ifstream in(file, std::ios::binary);
  if (!in) return UsageError(absl::StrCat("--prompt-file: cannot read '", file, "'"));
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return TokenizeBytes(content);
}

}  // namespace

absl::Status RunExplainCommand(const std::vector<std::string>& nodes, const TlsClientOptions& tls,
                               absl::Duration timeout, std::ostream& out) {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  const std::string ns_hex = absl::GetFlag(FLAGS_namespace);
  const uint32_t block_size = absl::GetFlag(FLAGS_block_size);
  if (model_dir.empty() == ns_hex.empty()) {
    return UsageError("explain needs --model=DIR or --namespace=HEX (one of them)");
  }
  if (block_size == 0) return UsageError("--block-size must be at least 1");
  absl::StatusOr<std::vector<uint32_t>> tokens = PromptTokens();
  if (!tokens.ok()) return tokens.status();

  std::optional<NamespaceDescription> description;
  Key ns;
  if (!model_dir.empty()) {
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(model_dir);
    if (!model.ok()) {
      return UsageError(absl::StrCat("--model: ", model.status().message()));
    }
    description = (*model)->Namespace(block_size, absl::GetFlag(FLAGS_cache_salt));
    ns = NamespaceId(*description);
  } else {
    absl::StatusOr<Key> parsed = KeyFromHex(ns_hex, "--namespace");
    if (!parsed.ok()) return UsageError(parsed.status().message());
    ns = *parsed;
  }
  const std::vector<Key> keys = ChainedBlockKeys(ns, *tokens, block_size);
  const std::string ns_raw(ns.view());

  // Every node's blocks and ring, in parallel.
  std::vector<NodeView> views(nodes.size());
  std::vector<absl::Status> results(nodes.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < nodes.size(); ++i) {
      threads.emplace_back(
          [&, i] { results[i] = ReadNode(nodes[i], tls, timeout, &views[i]); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }

  // Where each block is.
  std::vector<std::vector<Location>> where(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string key(keys[i].view());
    for (const NodeView& v : views) {
      for (v1::Tier tier : {v1::TIER_RAM, v1::TIER_DISK}) {
        if (v.held.blocks().contains(BlockSet::EntryKey(ns_raw, key, tier))) {
          where[i].push_back({v.address, tier});
        }
      }
    }
  }
  size_t usable = 0;
  while (usable < keys.size() && !where[usable].empty()) ++usable;

  // The namespaces held, and whether the prompt's first block is stored under another.
  std::map<std::string, uint64_t> namespaces;  // raw id -> blocks (counted once per tier)
  absl::flat_hash_set<std::string> held_keys;  // ns || key, any tier, any node
  for (const NodeView& v : views) {
    for (const auto& [entry, b] : v.held.blocks()) {
      ++namespaces[b.namespace_id()];
      held_keys.insert(b.namespace_id() + b.key());
    }
  }

  json report{{"namespace", KeyToHex(ns)},
              {"block_size", block_size},
              {"prompt_tokens", tokens->size()},
              {"blocks", keys.size()},
              {"usable_blocks", usable},
              {"nodes", nodes}};
  if (description) report["model"] = model_dir;
  json ns_list = json::array();
  for (const auto& [id, count] : namespaces) {
    json n{{"namespace", Hex(id)}, {"blocks", count}};
    if (description) {
      Key held_id;
      std::copy(id.begin(), id.end(), held_id.bytes.begin());
      if (held_id == ns) {
        n["matches"] = true;
      } else if (std::optional<NamespaceMatch> m = MatchNamespace(*description, held_id)) {
        n["differs_in"] = m->differences;
      } else {
        n["differs_in"] = std::vector<std::string>{kUnmatched};
      }
    }
    ns_list.push_back(n);
  }
  report["namespaces_held"] = ns_list;

  // Why the chain breaks.
  json breaks = nullptr;
  if (usable < keys.size()) {
    const std::string key(keys[usable].view());
    json b{{"index", usable}, {"key", KeyToHex(keys[usable])}};
    LastRemoval last;
    std::string last_node;
    for (const NodeView& v : views) {
      LastRemoval r = FindLastRemoval(v, ns_raw, key);
      if (r.found && (!last.found || r.unix_micros > last.unix_micros)) {
        last = r;
        last_node = v.address;
      }
    }
    // The prompt's first block under the other namespaces held, with the usual block
    // sizes; one that a variant of our model explains is preferred.
    std::string other_ns;
    uint32_t other_block_size = 0;
    bool other_explained = false;
    for (const auto& [id, count] : namespaces) {
      if (id == ns_raw || other_explained) continue;
      Key other;
      std::copy(id.begin(), id.end(), other.bytes.begin());
      for (uint32_t bs : {block_size, 1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u}) {
        if (bs > tokens->size()) continue;
        std::vector<Key> k0 = ChainedBlockKeys(other, absl::MakeConstSpan(*tokens).first(bs), bs);
        if (k0.empty() || !held_keys.contains(id + std::string(k0[0].view()))) continue;
        const bool explained = description && MatchNamespace(*description, other).has_value();
        if (other_ns.empty() || explained) {
          other_ns = id;
          other_block_size = bs;
          other_explained = explained;
        }
        break;
      }
    }
    if (last.found) {
      b["reason"] = last.reason;
      b["node"] = last_node;
      b["tier"] = TierName(last.tier);
      b["sequence"] = last.sequence;
      b["time"] = Time(last.unix_micros);
      b["detail"] = absl::StrCat(last.reason, " from ", TierName(last.tier), " on ", last_node,
                                 " at ", Time(last.unix_micros), " (event #", last.sequence,
                                 ")");
    } else if (!other_ns.empty()) {
      b["reason"] = "other_namespace";
      b["stored_namespace"] = Hex(other_ns);
      b["stored_block_size"] = other_block_size;
      std::string detail = absl::StrCat("the prompt is stored under namespace ",
                                        Hex(other_ns).substr(0, 16), " (block size ",
                                        other_block_size, "), not ", KeyToHex(ns).substr(0, 16));
      if (description) {
        Key other;
        std::copy(other_ns.begin(), other_ns.end(), other.bytes.begin());
        std::optional<NamespaceMatch> m = MatchNamespace(*description, other);
        std::vector<std::string> diffs = m ? m->differences : std::vector<std::string>{kUnmatched};
        b["differs_in"] = diffs;
        absl::StrAppend(&detail, "; differs in ", absl::StrJoin(diffs, ", "));
      }
      b["detail"] = detail;
    } else {
      b["reason"] = "never_stored";
      int64_t since = 0;
      for (const NodeView& v : views) {
        if (v.ring_since_unix_micros != 0 &&
            (since == 0 || v.ring_since_unix_micros < since)) {
          since = v.ring_since_unix_micros;
        }
      }
      b["detail"] = since == 0 ? std::string("no node holds it and no event mentions it")
                               : absl::StrCat("no node holds it and no event since ",
                                              Time(since), " mentions it");
    }
    breaks = b;
  }
  report["break"] = breaks;

  json blocks = json::array();
  for (size_t i = 0; i < keys.size(); ++i) {
    json j{{"index", i}, {"key", KeyToHex(keys[i])}};
    json w = json::array();
    for (const Location& l : where[i]) w.push_back({{"node", l.node}, {"tier", TierName(l.tier)}});
    j["stored"] = w;
    j["status"] = i < usable ? "usable" : (where[i].empty() ? "missing" : "unreachable");
    blocks.push_back(j);
  }
  report["block_list"] = blocks;

  if (absl::GetFlag(FLAGS_json)) {
    out << report.dump(2) << "\n";
    return absl::OkStatus();
  }
  out << "namespace " << KeyToHex(ns);
  if (description) out << " (" << model_dir << ", block size " << block_size << ")";
  out << "\n" << tokens->size() << " prompt tokens, " << keys.size() << " full blocks of "
      << block_size << "; usable cached prefix: " << usable << " blocks (" << usable * block_size
      << " tokens)\n";
  for (size_t i = 0; i < keys.size(); ++i) {
    out << "  block " << i << "  " << KeyToHex(keys[i]).substr(0, 16) << "  ";
    if (where[i].empty()) {
      out << "missing";
    } else {
      std::vector<std::string> places;
      for (const Location& l : where[i]) places.push_back(l.node + " " + TierName(l.tier));
      out << absl::StrJoin(places, ", ");
      if (i > usable) out << "  (unreachable: the chain breaks before it)";
    }
    if (i == usable) out << "  <- chain breaks: " << breaks["reason"].get<std::string>();
    out << "\n";
  }
  if (!breaks.is_null()) {
    out << "why block " << usable << " is missing: " << breaks["reason"].get<std::string>()
        << ": " << breaks["detail"].get<std::string>() << "\n";
  }
  out << "namespaces held:";
  if (ns_list.empty()) out << " none";
  out << "\n";
  for (const json& n : ns_list) {
    out << "  " << n["namespace"].get<std::string>() << "  " << n["blocks"].get<uint64_t>()
        << " blocks";
    if (n.contains("matches")) out << "  (this namespace)";
    if (n.contains("differs_in")) {
      out << "  differs in: " << absl::StrJoin(n["differs_in"].get<std::vector<std::string>>(), "; ");
    }
    out << "\n";
  }
  return absl::OkStatus();
}

}  // namespace kvcache
