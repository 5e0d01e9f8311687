#include <gtest/gtest.h>

#include "core/decode.h"
#include "core/util.h"
#include "otlp_profiles.pb.h"

using namespace spanprof;
namespace P = opentelemetry::proto::profiles::v1development;
namespace C = opentelemetry::proto::common::v1;

namespace {
// One profile, one sample (main → work, 30 ms) linked to span 0x..aa of trace 0x..bb. Resource
// and scope attributes as `refs` says: plain strings (what SDKs send) or string-table references
// (what the Collector's pdata sends).
struct Otlp {
  P::ExportProfilesServiceRequest req;
  P::Profile* prof = nullptr;
  bool refs = false;

  int32_t str(const std::string& s) {
    auto* d = req.mutable_dictionary();
    for (int i = 0; i < d->string_table_size(); ++i)
      if (d->string_table(i) == s) return i;
    d->add_string_table(s);
    return d->string_table_size() - 1;
  }
  void attr(google::protobuf::RepeatedPtrField<C::KeyValue>* kvs, const std::string& k,
            const std::string& v) {
    auto* kv = kvs->Add();
    if (refs) {
      kv->set_key_strindex(str(k));
      kv->mutable_value()->set_string_value_strindex(str(v));
    } else {
      kv->set_key(k);
      kv->mutable_value()->set_string_value(v);
    }
  }
  // A sample attribute; returns its attribute-table index.
  int32_t sample_attr(const std::string& k, const C::AnyValue& v) {
    auto* a = req.mutable_dictionary()->add_attribute_table();
    a->set_key_strindex(str(k));
    *a->mutable_value() = v;
    return req.dictionary().attribute_table_size() - 1;
  }
  explicit Otlp(bool use_refs) : refs(use_refs) {
    auto* d = req.mutable_dictionary();
    str("");
    d->add_function_table();
    d->add_location_table();
    d->add_stack_table();
    d->add_link_table();
    d->add_attribute_table();
    for (auto name : {"main", "work"}) {
      auto* f = d->add_function_table();
      f->set_name_strindex(str(name));
      f->set_filename_strindex(str("app.py"));
      d->add_location_table()->add_lines()->set_function_index(d->function_table_size() - 1);
    }
    auto* st = d->add_stack_table();
    st->add_location_indices(2);  // leaf first
    st->add_location_indices(1);
    auto* link = d->add_link_table();
    link->set_trace_id(std::string(15, '\0') + "\xbb");
    link->set_span_id(std::string(7, '\0') + "\xaa");
    auto* rp = req.add_resource_profiles();
    auto* sp = rp->add_scope_profiles();
    prof = sp->add_profiles();
    prof->mutable_sample_type()->set_type_strindex(str("cpu"));
    prof->mutable_sample_type()->set_unit_strindex(str("nanoseconds"));
    *prof->mutable_period_type() = prof->sample_type();
    prof->set_period(10'000'000);
    prof->set_time_unix_nano(1'700'000'000'000'000'000);
    auto* s = prof->add_samples();
    s->set_stack_index(1);
    s->set_link_index(1);
    s->add_values(30'000'000);
  }
  auto* resource() { return req.mutable_resource_profiles(0)->mutable_resource(); }
  auto* scope() { return req.mutable_resource_profiles(0)->mutable_scope_profiles(0); }
  std::string body() const { return req.SerializeAsString(); }
};

Status decode(const Otlp& o, std::vector<RawProfile>& out) {
  return decode_otlp_profiles(o.body(), false, "t", Limits{}, out);
}

C::AnyValue string_value(const std::string& s) {
  C::AnyValue v;
  v.set_string_value(s);
  return v;
}

std::string label(const Labels& l, const std::string& k) {
  const std::string* v = find_label(l, k);
  return v ? *v : "<none>";
}
}  // namespace

// The agent's tags and service name reach the series labels whichever way the strings are
// encoded: inline (SDKs) or as string-table references (the Collector's pdata).
TEST(DecodeOtlp, ResourceAndScopeAttributesBecomeSeriesLabelsInBothEncodings) {
  for (bool refs : {false, true}) {
    SCOPED_TRACE(refs ? "string-table references" : "inline strings");
    Otlp o(refs);
    o.attr(o.resource()->mutable_attributes(), "service.name", "shop");
    o.attr(o.resource()->mutable_attributes(), "env", "ci");
    o.attr(o.scope()->mutable_scope()->mutable_attributes(), "env", "scope-loses");
    o.attr(o.scope()->mutable_scope()->mutable_attributes(), "region", "eu");
    auto* n = o.resource()->add_attributes();  // an integer is a label, a bool is not
    n->set_key("process.pid");
    n->mutable_value()->set_int_value(42);
    auto* b = o.resource()->add_attributes();
    b->set_key("debug");
    b->mutable_value()->set_bool_value(true);
    std::vector<RawProfile> out;
    ASSERT_FALSE(decode(o, out));
    ASSERT_EQ(out.size(), 1u);
    const Labels& s = out[0].series;
    EXPECT_EQ(label(s, "service_name"), "shop");
    EXPECT_EQ(label(s, "service.name"), "shop");
    EXPECT_EQ(label(s, "env"), "ci");
    EXPECT_EQ(label(s, "region"), "eu");
    EXPECT_EQ(label(s, "process.pid"), "42");
    EXPECT_EQ(label(s, "debug"), "<none>");
    EXPECT_EQ(label(s, "__name__"), "process_cpu");
    ASSERT_EQ(out[0].samples.size(), 1u);
    EXPECT_EQ(out[0].samples[0].ids.span_id, 0xaau);
    EXPECT_EQ(out[0].samples[0].ids.trace_lo, 0xbbu);
  }
}

TEST(DecodeOtlp, ServiceNameFallsBackAsPyroscopeDoes) {
  Otlp o(true);
  std::vector<RawProfile> out;
  ASSERT_FALSE(decode(o, out));
  EXPECT_EQ(label(out.at(0).series, "service_name"), "unknown_service");
  o.attr(o.resource()->mutable_attributes(), "process.executable.name", "python3");
  out.clear();
  ASSERT_FALSE(decode(o, out));
  EXPECT_EQ(label(out.at(0).series, "service_name"), "unknown_service:python3");
}

TEST(DecodeOtlp, BadReferencesAre400) {
  {
    Otlp o(true);
    auto* kv = o.resource()->add_attributes();
    kv->set_key_strindex(9999);
    kv->mutable_value()->set_string_value("x");
    std::vector<RawProfile> out;
    auto e = decode(o, out);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 400);
    EXPECT_NE(e->message.find("key_strindex"), std::string::npos);
  }
  {
    Otlp o(true);
    auto* kv = o.resource()->add_attributes();
    kv->set_key("k");
    kv->mutable_value()->mutable_array_value()->add_values()->set_string_value_strindex(-1);
    std::vector<RawProfile> out;
    auto e = decode(o, out);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 400);
  }
  {
    Otlp o(true);
    auto* kv = o.resource()->add_attributes();
    kv->set_key("k");
    kv->set_key_strindex(1);
    std::vector<RawProfile> out;
    auto e = decode(o, out);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 400);
  }
}

// spanprof's agent sends the local root span in the link and the active span as a bytes-valued
// attribute, which is no series label (in Pyroscope either): one series, both ids kept.
TEST(DecodeOtlp, BytesSpanAttributeIsTheActiveSpanNotALabel) {
  Otlp o(true);
  C::AnyValue active;
  active.set_bytes_value(std::string(7, '\0') + "\xcc");
  auto* s0 = o.prof->mutable_samples(0);
  s0->add_attribute_indices(o.sample_attr("active_span_id", active));
  s0->add_attribute_indices(o.sample_attr("span_name", string_value("GET /")));
  std::vector<RawProfile> out;
  ASSERT_FALSE(decode(o, out));
  ASSERT_EQ(out.size(), 1u);
  const RawSample& s = out[0].samples.at(0);
  EXPECT_EQ(s.ids.span_id, 0xaau);
  EXPECT_EQ(s.ids.active_span_id, 0xccu);
  EXPECT_EQ(out[0].label_sets.at(s.label_set), (Labels{{"span_name", "GET /"}}));
}

// A sample's own service.name splits the profile per service, as in Pyroscope.
TEST(DecodeOtlp, SampleServiceNameSplitsTheProfile) {
  Otlp o(false);
  o.attr(o.resource()->mutable_attributes(), "service.name", "host");
  *o.prof->add_samples() = o.prof->samples(0);
  o.prof->mutable_samples(1)->add_attribute_indices(
      o.sample_attr("service.name", string_value("guest")));
  std::vector<RawProfile> out;
  ASSERT_FALSE(decode(o, out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(label(out[0].series, "service_name"), "host");
  EXPECT_EQ(label(out[1].series, "service_name"), "guest");
  EXPECT_EQ(out[0].samples.size(), 1u);
  EXPECT_EQ(out[1].samples.size(), 1u);
  EXPECT_EQ(out[1].label_sets.at(out[1].samples[0].label_set), Labels{});
}
