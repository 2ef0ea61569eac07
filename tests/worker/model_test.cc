// Model folders: loading, the errors of bad folders, dtypes and shards, and the digest.

#include "worker/model.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "client/block_keys.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "tests/worker/worker_test_util.h"
#include "worker/make_model.h"
#include "worker/safetensors.h"

namespace kvcache {
namespace {

using testing::ConstantTensors;
using testing::HandTensor;
using testing::LoadOrDie;
using testing::TempDir;
using testing::WriteHandModel;
using testing::WriteTinyModel;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

ModelConfig Tiny() { return *PresetConfig("tiny"); }

// Expects Load(dir) to fail with `code` and a message containing every one of `needles`.
void ExpectLoadError(const std::string& dir, absl::StatusCode code,
                     std::vector<std::string> needles) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), code) << model.status();
  for (const std::string& n : needles) {
    EXPECT_NE(model.status().message().find(n), std::string::npos)
        << "\"" << n << "\" not in: " << model.status().message();
  }
}

TEST(ModelTest, LoadsTinyPreset) {
  TempDir dir;
  WriteTinyModel(dir.path());
  std::unique_ptr<Model> model = LoadOrDie(dir.path());
  ASSERT_NE(model, nullptr);
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.hidden_size, 64u);
  EXPECT_EQ(c.num_kv_heads, 2u);
  EXPECT_EQ(c.head_dim, 16u);
  EXPECT_GE(c.vocab_size, 256u);
  EXPECT_GE(c.max_position_embeddings, 4096u);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_NE(model->lm_head(), model->embed_tokens());
  EXPECT_EQ(model->weights_digest().size(), 64u);
  // Norm weights are near 1; linear weights are small and vary.
  EXPECT_NEAR(model->layer(0).input_norm[3], 1.0f, 0.1f);
  EXPECT_NE(model->layer(0).q_proj[0], model->layer(0).q_proj[1]);
  EXPECT_LT(std::fabs(model->layer(0).q_proj[0]), 0.25f);
}

TEST(ModelTest, GeneratorIsDeterministicAndSeeded) {
  TempDir a, b, c;
  WriteTinyModel(a.path(), 5);
  WriteTinyModel(b.path(), 5);
  WriteTinyModel(c.path(), 6);
  const std::string fa = ReadAll(a.Sub("model.safetensors"));
  EXPECT_EQ(fa, ReadAll(b.Sub("model.safetensors")));
  EXPECT_NE(fa, ReadAll(c.Sub("model.safetensors")));
  EXPECT_EQ(LoadOrDie(a.path())->weights_digest(), LoadOrDie(b.path())->weights_digest());
  EXPECT_NE(LoadOrDie(a.path())->weights_digest(), LoadOrDie(c.path())->weights_digest());
}

TEST(ModelTest, DigestCoversConfig) {
  TempDir dir;
  WriteTinyModel(dir.path());
  const std::string before = LoadOrDie(dir.path())->weights_digest();
  std::string config = ReadAll(dir.Sub("config.json"));
  WriteAll(dir.Sub("config.json"), config + " ");
  EXPECT_NE(LoadOrDie(dir.path())->weights_digest(), before);
}

TEST(ModelTest, ShardedFolderLoadsTheSameWeights) {
  TempDir one, three;
  WriteTinyModel(one.path(), 3);
  WriteTinyModel(three.path(), 3, DType::kF32, 3);
  EXPECT_TRUE(std::filesystem::exists(three.Sub("model-00002-of-00003.safetensors")));
  std::unique_ptr<Model> a = LoadOrDie(one.path()), b = LoadOrDie(three.path());
  const ModelConfig& c = a->config();
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    EXPECT_EQ(0, std::memcmp(a->layer(l).down_proj, b->layer(l).down_proj,
                             sizeof(float) * c.hidden_size * c.intermediate_size));
  }
  EXPECT_EQ(0,
            std::memcmp(a->lm_head(), b->lm_head(), sizeof(float) * c.vocab_size * c.hidden_size));
}

TEST(ModelTest, HalfPrecisionModelsMatchF32WithinTheirRounding) {
  TempDir f32, f16, bf16;
  WriteTinyModel(f32.path(), 9, DType::kF32);
  WriteTinyModel(f16.path(), 9, DType::kF16);
  WriteTinyModel(bf16.path(), 9, DType::kBF16);
  std::unique_ptr<Model> a = LoadOrDie(f32.path()), h = LoadOrDie(f16.path()),
                         b = LoadOrDie(bf16.path());
  EXPECT_EQ(h->config().torch_dtype, "float16");
  EXPECT_EQ(b->config().torch_dtype, "bfloat16");
  const ModelConfig& c = a->config();
  auto check = [&](const float* x, const float* xh, const float* xb, size_t n, const char* what) {
    for (size_t i = 0; i < n; ++i) {
      // bf16 is exactly the f32 value rounded to bf16; f16 within its 11-bit mantissa.
      ASSERT_EQ(xb[i], BFloat16ToFloat(FloatToBFloat16(x[i]))) << what << "[" << i << "]";
      ASSERT_EQ(xh[i], HalfToFloat(FloatToHalf(x[i]))) << what << "[" << i << "]";
      ASSERT_NEAR(xh[i], x[i], std::fabs(x[i]) * 1e-3 + 1e-7) << what << "[" << i << "]";
      ASSERT_NEAR(xb[i], x[i], std::fabs(x[i]) * 8e-3) << what << "[" << i << "]";
    }
  };
  check(a->embed_tokens(), h->embed_tokens(), b->embed_tokens(),
        size_t{c.vocab_size} * c.hidden_size, "embed");
  check(a->layer(1).q_proj, h->layer(1).q_proj, b->layer(1).q_proj,
        size_t{c.q_dim()} * c.hidden_size, "q_proj");
  check(a->final_norm(), h->final_norm(), b->final_norm(), c.hidden_size, "norm");
}

TEST(ModelTest, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);               // Rounds up to infinity.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);  // Smallest subnormal.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // Tie to even.
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_FLOAT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_FLOAT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(HalfToFloat(0xFC00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // Tie to even.
  EXPECT_EQ(FloatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_FLOAT_EQ(BFloat16ToFloat(0xC040), -3.0f);
}

TEST(ModelTest, LoadsHuggingFaceConfigDefaults) {
  // A minimal real-world style config: no head_dim, no num_key_value_heads, no rope_theta.
  absl::StatusOr<ModelConfig> c = ParseModelConfig(
      R"({"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 300, "rms_norm_eps": 1e-6,
          "max_position_embeddings": 512, "torch_dtype": "bfloat16"})",
      "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 4u);
  EXPECT_EQ(c->head_dim, 32u);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
}

TEST(ModelLoadErrorTest, NoFolder) {
  TempDir dir;
  ExpectLoadError(dir.Sub("absent"), absl::StatusCode::kNotFound, {"absent"});
}

TEST(ModelLoadErrorTest, MissingConfig) {
  TempDir dir;
  WriteTinyModel(dir.path());
  std::filesystem::remove(dir.Sub("config.json"));
  ExpectLoadError(dir.path(), absl::StatusCode::kNotFound, {"config.json"});
}

TEST(ModelLoadErrorTest, ConfigNotJson) {
  TempDir dir;
  WriteTinyModel(dir.path());
  WriteAll(dir.Sub("config.json"), "{\"hidden_size\": 64,");
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument, {"config.json", "JSON"});
}

TEST(ModelLoadErrorTest, ConfigMissingKeyIsNamed) {
  for (const char* key : {"hidden_size", "num_hidden_layers", "vocab_size", "rms_norm_eps",
                          "intermediate_size", "num_attention_heads", "max_position_embeddings"}) {
    TempDir dir;
    WriteTinyModel(dir.path());
    nlohmann::json j = nlohmann::json::parse(ReadAll(dir.Sub("config.json")));
    j.erase(key);
    WriteAll(dir.Sub("config.json"), j.dump());
    ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument, {"config.json", key});
  }
}

TEST(ModelLoadErrorTest, ConfigMistypedOrInconsistent) {
  TempDir dir;
  WriteTinyModel(dir.path());
  nlohmann::json j = nlohmann::json::parse(ReadAll(dir.Sub("config.json")));
  j["hidden_size"] = "64";
  WriteAll(dir.Sub("config.json"), j.dump());
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument, {"hidden_size"});
  j["hidden_size"] = 64;
  j["num_key_value_heads"] = 3;
  WriteAll(dir.Sub("config.json"), j.dump());
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument, {"num_key_value_heads"});
}

TEST(ModelLoadErrorTest, NoSafetensors) {
  TempDir dir;
  WriteTinyModel(dir.path());
  std::filesystem::remove(dir.Sub("model.safetensors"));
  ExpectLoadError(dir.path(), absl::StatusCode::kNotFound, {"safetensors"});
}

TEST(ModelLoadErrorTest, MissingTensorIsNamed) {
  TempDir dir;
  ModelConfig c = Tiny();
  auto tensors = ConstantTensors(c, 0.01f);
  tensors.erase("model.layers.1.mlp.up_proj.weight");
  WriteHandModel(dir.path(), c, tensors);
  ExpectLoadError(dir.path(), absl::StatusCode::kNotFound,
                  {"model.layers.1.mlp.up_proj.weight", dir.path()});
}

TEST(ModelLoadErrorTest, MissingLmHeadUnlessTied) {
  TempDir dir;
  ModelConfig c = Tiny();
  auto tensors = ConstantTensors(c, 0.01f);
  tensors.erase("lm_head.weight");
  WriteHandModel(dir.path(), c, tensors);
  ExpectLoadError(dir.path(), absl::StatusCode::kNotFound, {"lm_head.weight"});
  c.tie_word_embeddings = true;
  WriteHandModel(dir.path(), c, tensors);
  std::unique_ptr<Model> model = LoadOrDie(dir.path());
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->lm_head(), model->embed_tokens());
}

TEST(ModelLoadErrorTest, WrongShapeIsNamed) {
  TempDir dir;
  ModelConfig c = Tiny();
  auto tensors = ConstantTensors(c, 0.01f);
  HandTensor& k = tensors["model.layers.2.self_attn.k_proj.weight"];
  k.shape = {k.shape[1], k.shape[0]};  // Transposed: [hidden, kv_dim].
  WriteHandModel(dir.path(), c, tensors);
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument,
                  {"model.layers.2.self_attn.k_proj.weight", "model.safetensors", "shape",
                   "[64, 32]", "[32, 64]"});
}

TEST(ModelLoadErrorTest, UnknownDtypeIsNamed) {
  TempDir dir;
  ModelConfig c = Tiny();
  WriteHandModel(dir.path(), c, ConstantTensors(c, 0.01f));
  // Patch the header: the norm's "F32" becomes "I32" (same length, same byte count).
  std::string bytes = ReadAll(dir.Sub("model.safetensors"));
  const size_t at = bytes.find("\"model.norm.weight\"");
  ASSERT_NE(at, std::string::npos);
  const size_t dtype = bytes.find("F32", at);
  ASSERT_NE(dtype, std::string::npos);
  bytes[dtype] = 'I';
  WriteAll(dir.Sub("model.safetensors"), bytes);
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument,
                  {"model.norm.weight", "I32", "model.safetensors"});
}

TEST(ModelLoadErrorTest, TruncatedFile) {
  TempDir dir;
  WriteTinyModel(dir.path());
  const std::string path = dir.Sub("model.safetensors");
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 100);
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument,
                  {"model.safetensors", "truncated"});
  std::filesystem::resize_file(path, 5);
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument,
                  {"model.safetensors", "truncated"});
  // A header length pointing past the end.
  WriteAll(path, std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10));
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument, {"model.safetensors"});
}

TEST(ModelLoadErrorTest, CorruptHeader) {
  TempDir dir;
  WriteTinyModel(dir.path());
  const std::string header = "{\"a\": [1, 2";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  WriteAll(dir.Sub("model.safetensors"), bytes + header);
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument, {"model.safetensors", "JSON"});
}

TEST(ModelLoadErrorTest, TensorInTwoFiles) {
  TempDir dir;
  ModelConfig c = Tiny();
  auto tensors = ConstantTensors(c, 0.01f);
  WriteHandModel(dir.path(), c, tensors);
  std::map<std::string, HandTensor> extra = {{"model.norm.weight", tensors["model.norm.weight"]}};
  WriteHandModel(dir.path(), c, extra, "extra.safetensors");
  ExpectLoadError(dir.path(), absl::StatusCode::kInvalidArgument,
                  {"model.norm.weight", "extra.safetensors"});
}

TEST(BlockKeysTest, ModelNamespaceDependsOnWeightsAndBlockSize) {
  testing::TempDir a, b;
  testing::WriteTinyModel(a.path(), 1);
  testing::WriteTinyModel(b.path(), 2);
  std::unique_ptr<Model> ma = testing::LoadOrDie(a.path()), mb = testing::LoadOrDie(b.path());
  const NamespaceDescription d = ma->Namespace(16, "");
  EXPECT_EQ(d.weights_digest, ma->weights_digest());
  EXPECT_EQ(d.num_layers, 3u);
  EXPECT_EQ(d.num_kv_heads, 2u);
  EXPECT_EQ(d.head_dim, 16u);
  EXPECT_EQ(d.dtype, "f32");
  EXPECT_NE(NamespaceId(d), NamespaceId(mb->Namespace(16, "")));
  EXPECT_NE(NamespaceId(d), NamespaceId(ma->Namespace(32, "")));
  EXPECT_NE(NamespaceId(d), NamespaceId(ma->Namespace(16, "salt")));
}

}  // namespace
}  // namespace kvcache
