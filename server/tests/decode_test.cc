#include "core/decode.h"

#include <gtest/gtest.h>

#include "core/util.h"
#include "pprof.pb.h"
#include "push.pb.h"

using namespace spanprof;

namespace {
// pprof with two functions main→work, one sample labelled with span/trace ids and a thread tag.
std::string make_pprof(int depth = 2) {
  perftools::profiles::Profile p;
  for (auto s : {"", "cpu", "nanoseconds", "main", "work", "app.py", "span_id", "0123456789abcdef",
                 "trace_id", "0123456789abcdef0123456789abcdef", "thread_name", "MainThread"})
    p.add_string_table(s);
  auto* st = p.add_sample_type();
  st->set_type(1);
  st->set_unit(2);
  p.mutable_period_type()->set_type(1);
  p.mutable_period_type()->set_unit(2);
  p.set_period(10'000'000);
  p.set_time_nanos(1'700'000'000'000'000'000);
  for (int i = 1; i <= 2; ++i) {
    auto* f = p.add_function();
    f->set_id(uint64_t(i));
    f->set_name(2 + i);
    f->set_filename(5);
    auto* l = p.add_location();
    l->set_id(uint64_t(i));
    auto* ln = l->add_line();
    ln->set_function_id(uint64_t(i));
    ln->set_line(10 * i);
  }
  auto* s = p.add_sample();
  for (int i = 0; i < depth; ++i) s->add_location_id(i % 2 ? 1 : 2);  // leaf first: work, main
  s->add_value(30'000'000);
  for (auto [k, v] : {std::pair{6, 7}, {8, 9}, {10, 11}}) {
    auto* lab = s->add_label();
    lab->set_key(k);
    lab->set_str(v);
  }
  return p.SerializeAsString();
}
}  // namespace

TEST(Decode, PprofSpanLabelsStayOnSamples) {
  std::vector<RawProfile> out;
  Labels series{{"__name__", "process_cpu"}, {"service_name", "svc"}};
  ASSERT_FALSE(decode_pprof(make_pprof(), "t", series, Limits{}, out));
  ASSERT_EQ(out.size(), 1u);
  auto& p = out[0];
  EXPECT_EQ(profile_type_id(p), "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
  ASSERT_EQ(p.samples.size(), 1u);
  auto& s = p.samples[0];
  EXPECT_EQ(s.value, 30'000'000);
  EXPECT_EQ(s.ids.span_id, 0x0123456789abcdefULL);
  EXPECT_EQ(s.ids.trace_lo, 0x0123456789abcdefULL);
  ASSERT_EQ(s.frames.size(), 2u);
  EXPECT_EQ(p.frames[s.frames[0]].function, "main");  // root first
  EXPECT_EQ(p.frames[s.frames[1]].function, "work");
  // thread_name became an extra series label; span ids did not.
  EXPECT_EQ(p.label_sets[s.label_set], (Labels{{"thread_name", "MainThread"}}));
}

TEST(Decode, PprofGzipAndLimits) {
  std::vector<RawProfile> out;
  ASSERT_FALSE(decode_pprof(gzip(make_pprof()), "t", {}, Limits{}, out));
  EXPECT_EQ(out.size(), 1u);
  Limits lim;
  lim.max_stack_depth = 10;
  auto e = decode_pprof(make_pprof(11), "t", {}, lim, out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->message.find("stack depth"), std::string::npos);
  lim = Limits{};
  lim.max_decompressed_bytes = 50;
  e = decode_pprof(gzip(make_pprof()), "t", {}, lim, out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 413);
  e = decode_pprof("\x0a\xff\xff", "t", {}, Limits{}, out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
}

TEST(Decode, RepeatedStacksAreMarkedAndLocationFieldsConcatenate) {
  // Sample 0 and 2 share one packed location_id run; sample 1 lists its locations unpacked
  // then packed (values concatenate in field order); two sample types, and sample 0 has value 0
  // for the second, so there sample 2 is the first of its stack.
  perftools::profiles::Profile p;
  for (auto s : {"", "cpu", "nanoseconds", "samples", "count", "main", "work", "app.py"})
    p.add_string_table(s);
  for (auto [t, u] : {std::pair{1, 2}, {3, 4}}) {
    auto* st = p.add_sample_type();
    st->set_type(t);
    st->set_unit(u);
  }
  for (int i = 1; i <= 2; ++i) {
    auto* f = p.add_function();
    f->set_id(uint64_t(i));
    f->set_name(4 + i);
    f->set_filename(7);
    auto* l = p.add_location();
    l->set_id(uint64_t(i));
    l->add_line()->set_function_id(uint64_t(i));
  }
  auto sample = [&](std::vector<uint64_t> locs, int64_t a, int64_t b) {
    auto* s = p.add_sample();
    for (auto l : locs) s->add_location_id(l);
    s->add_value(a);
    s->add_value(b);
  };
  sample({2, 1}, 5, 0);
  sample({}, 7, 7);
  sample({2, 1}, 3, 3);
  std::string bytes = p.SerializeAsString();
  // Hand-encode sample 1: location_id 1 unpacked (key 0x08), then a packed run [2] (key 0x0a).
  perftools::profiles::Profile one;
  one.add_sample()->add_value(7);
  one.mutable_sample(0)->add_value(7);
  std::string values = one.sample(0).SerializeAsString();  // 0x12 len 7 7
  std::string mixed = std::string("\x08\x01\x0a\x01\x02", 5) + values;
  perftools::profiles::Profile rebuilt;
  ASSERT_TRUE(rebuilt.ParseFromString(bytes));
  rebuilt.mutable_sample(1)->Clear();
  ASSERT_TRUE(rebuilt.mutable_sample(1)->ParseFromString(mixed));
  ASSERT_EQ(rebuilt.sample(1).location_id_size(), 2);
  ASSERT_EQ(rebuilt.sample(1).location_id(0), 1u);
  // Re-serialising would re-pack the field: splice the hand-made sample in at the wire level.
  perftools::profiles::Profile head = rebuilt;
  head.clear_sample();
  std::string wire;
  for (int i = 0; i < 3; ++i) {
    std::string m = i == 1 ? mixed : rebuilt.sample(i).SerializeAsString();
    wire += '\x12';
    wire += char(m.size());
    wire += m;
  }
  wire += head.SerializeAsString();
  std::vector<RawProfile> out;
  ASSERT_FALSE(decode_pprof(wire, "t", {}, Limits{}, out));
  ASSERT_EQ(out.size(), 2u);
  auto names = [&](const RawProfile& r, const RawSample& s) {
    std::string n;
    for (auto f : s.frames) n += r.frames[f].function + ";";
    return n;
  };
  const RawProfile& cpu = out[0];
  ASSERT_EQ(cpu.samples.size(), 3u);
  EXPECT_EQ(names(cpu, cpu.samples[0]), "main;work;");  // pprof lists leaf first
  EXPECT_EQ(names(cpu, cpu.samples[1]), "work;main;");  // [1, 2]: leaf work, root main
  EXPECT_EQ(names(cpu, cpu.samples[2]), "main;work;");
  EXPECT_EQ(cpu.samples[0].same_stack_as, RawSample::kNoSample);
  EXPECT_EQ(cpu.samples[1].same_stack_as, RawSample::kNoSample);
  EXPECT_EQ(cpu.samples[2].same_stack_as, 0u);
  const RawProfile& count = out[1];
  ASSERT_EQ(count.samples.size(), 2u);  // sample 0 has value 0 here
  EXPECT_EQ(names(count, count.samples[1]), "main;work;");
  EXPECT_EQ(count.samples[1].same_stack_as, RawSample::kNoSample);
}

TEST(Decode, PushReadInPlaceAgreesWithTheGeneratedParser) {
  push::v1::PushRequest req;
  for (auto svc : {"a", "b"}) {
    auto* s = req.add_series();
    auto* first = s->add_samples();
    first->set_raw_profile(make_pprof());
    first->set_id("4d1c");  // an ID after the profile, as clients send it
    s->add_samples()->set_raw_profile(gzip(make_pprof(4)));
    s->add_annotations()->set_key("k");  // a field the server ignores
    auto* l = s->add_labels();           // labels after the samples
    l->set_name("service_name");
    l->set_value(svc);
  }
  std::string body = req.SerializeAsString();
  // An unknown field 7 of the request as a group holding a nested group (start tag 0x3b, inner
  // field 1 group 0x0b..0x0c, end tag 0x3c): proto2 writers may send those.
  std::string grouped = body + std::string("\x3b\x0b\x08\x01\x0c\x3c", 6);
  for (const std::string& b : {body, grouped}) {
    std::vector<RawProfile> got, want;
    ASSERT_FALSE(decode_push(b, false, "t", Limits{}, got));
    ASSERT_FALSE(decode_push_generated(b, false, "t", Limits{}, want));
    ASSERT_EQ(got.size(), 4u);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].series, want[i].series);
      EXPECT_EQ(got[i].samples.size(), want[i].samples.size());
      EXPECT_EQ(got[i].samples[0].frames, want[i].samples[0].frames);
    }
    EXPECT_EQ(*find_label(got[3].series, "service_name"), "b");
  }
  // Each of these is refused by both: a group closed by the wrong field, a truncated body, a
  // label value that is not UTF-8, an empty label name.
  auto bad_label = req;
  bad_label.mutable_series(0)->mutable_labels(0)->set_value("\xc3\x28");
  auto no_name = req;
  no_name.mutable_series(1)->mutable_labels(0)->clear_name();
  for (const std::string& b :
       {body + std::string("\x3b\x08\x01\x44", 4), body.substr(0, body.size() - 3),
        bad_label.SerializeAsString(), no_name.SerializeAsString()}) {
    std::vector<RawProfile> got, want;
    auto e = decode_push(b, false, "t", Limits{}, got);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->status, 400);
    EXPECT_TRUE(decode_push_generated(b, false, "t", Limits{}, want));
  }
}

TEST(Decode, FoldedText) {
  LegacyParams p;
  p.name = "myapp.cpu{env=prod}";
  p.sample_rate = 100;
  std::vector<RawProfile> out;
  ASSERT_FALSE(
      decode_folded("main;work 3\nmain;work 2\nmain;idle 1\n\n", false, p, "t", Limits{}, out));
  ASSERT_EQ(out.size(), 1u);
  auto& r = out[0];
  EXPECT_EQ(*find_label(r.series, "service_name"), "myapp");
  EXPECT_EQ(*find_label(r.series, "env"), "prod");
  EXPECT_EQ(profile_type_id(r), "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
  ASSERT_EQ(r.samples.size(), 2u);
  EXPECT_EQ(r.samples[0].value, 5 * 10'000'000);  // samples × period
  EXPECT_EQ(r.samples[1].value, 1 * 10'000'000);
  out.clear();
  ASSERT_FALSE(decode_folded("a;b\na;b\n", true, p, "t", Limits{}, out));
  EXPECT_EQ(out[0].samples[0].value, 2 * 10'000'000);
  EXPECT_TRUE(decode_folded("a;b x\n", false, p, "t", Limits{}, out));
  EXPECT_TRUE(decode_folded("a;b\n", false, p, "t", Limits{}, out));
  p.name = "";
  EXPECT_TRUE(decode_folded("a 1\n", false, p, "t", Limits{}, out));
}

TEST(Decode, LabelLimits) {
  Limits lim;
  lim.max_labels_per_series = 2;
  EXPECT_TRUE(check_labels({{"a", "1"}, {"b", "2"}, {"c", "3"}}, lim));
  EXPECT_FALSE(check_labels({{"__name__", "x"}, {"a", "1"}, {"b", "2"}}, lim));
  EXPECT_TRUE(check_labels({{"a", std::string(5000, 'x')}}, Limits{}));
  EXPECT_TRUE(check_labels({{"a b", "1"}}, Limits{}));
}

TEST(Util, HexAndTimes) {
  uint64_t v;
  EXPECT_TRUE(parse_hex_u64("00000000000000ff", v));
  EXPECT_EQ(v, 255u);
  EXPECT_FALSE(parse_hex_u64("ff", v));
  EXPECT_EQ(hex_u64(255), "00000000000000ff");
  EXPECT_EQ(unix_to_ns(1'700'000'000), 1'700'000'000'000'000'000);
  EXPECT_EQ(unix_to_ns(1'700'000'000'000), 1'700'000'000'000'000'000);
  EXPECT_EQ(unix_to_ns(9'223'372'036), 9'223'372'036'000'000'000);
  EXPECT_EQ(unix_to_ns(9'223'372'037), INT64_MAX);       // seconds past year 2262: saturates
  EXPECT_EQ(unix_to_ns(99'999'999'999'999), INT64_MAX);  // ms
  EXPECT_EQ(unix_to_ns(-5), 0);
  EXPECT_EQ(parse_duration_s("7d"), 7 * 86400);
  EXPECT_EQ(parse_size_bytes("10GB"), 10LL << 30);
  std::string d;
  EXPECT_TRUE(base64_decode(base64_encode("user:tok"), d));
  EXPECT_EQ(d, "user:tok");
}

TEST(Util, NextTrimmedLine) {
  std::string_view text = "a;b 1 \r\n\nlast  ", line;
  std::vector<std::string> got;
  for (size_t pos = 0; next_trimmed_line(text, pos, line);) got.emplace_back(line);
  EXPECT_EQ(got, (std::vector<std::string>{"a;b 1", "", "last"}));
}
