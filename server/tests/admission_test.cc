// http/admission.h: credentials, tenant ids and the gRPC status each Error becomes.
#include "http/admission.h"

#include <gtest/gtest.h>

namespace spanprof {

TEST(Admission, BearerAndBasicWithAnyCaseScheme) {
  EXPECT_TRUE(authorized("", ""));
  EXPECT_TRUE(authorized("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(authorized("bEaReR   s3cret", "s3cret"));
  EXPECT_TRUE(authorized("Basic dTpzM2NyZXQ=", "s3cret"));  // u:s3cret
  EXPECT_FALSE(authorized("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(authorized("Bearers3cret", "s3cret"));
  EXPECT_FALSE(authorized("", "s3cret"));
  EXPECT_FALSE(authorized("Basic !!!", "s3cret"));
}

TEST(Admission, TenantIds) {
  EXPECT_EQ(*tenant_from(""), "anonymous");
  EXPECT_EQ(*tenant_from("team-a_1.prod"), "team-a_1.prod");
  EXPECT_EQ(*tenant_from("team(a)*"), "team(a)*");  // Pyroscope's rules (check_tenant_id)
  EXPECT_FALSE(tenant_from(".."));
  EXPECT_FALSE(tenant_from("a/b"));
  EXPECT_FALSE(tenant_from(std::string(151, 'a')));
  EXPECT_EQ(tenant_from("a b").error.status, 400);
}

TEST(Admission, GrpcCodesAsOtlpClientsReadThem) {
  EXPECT_EQ(grpc_status_code(bad_request("x")), 3);  // INVALID_ARGUMENT: not retried
  EXPECT_EQ(grpc_status_code({415, "", ""}), 3);
  EXPECT_EQ(grpc_status_code(too_large("x")), 8);  // RESOURCE_EXHAUSTED
  EXPECT_EQ(grpc_status_code({429, "", "", 2}), 8);
  EXPECT_EQ(grpc_status_code({507, "", "", 60}), 14);  // UNAVAILABLE: disk full, retried
  EXPECT_EQ(grpc_status_code({503, "", ""}), 14);
  EXPECT_EQ(grpc_status_code({401, "", ""}), 16);
  EXPECT_EQ(grpc_status_code({500, "", ""}), 13);
}

TEST(Admission, GateChargesRateThenInFlight) {
  Limits lim;
  lim.max_ingest_bytes_per_s = 1000;  // burst 4000
  lim.max_inflight_per_tenant = 1;
  IngestGate gate(lim);
  TenantInFlight::Slot a;
  EXPECT_FALSE(gate.enter("t", 100, a));
  TenantInFlight::Slot b;
  auto busy = gate.enter("t", 100, b);
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 429);
  TenantInFlight::Slot c;
  EXPECT_FALSE(gate.enter("other", 100, c));  // tenants apart
  TenantInFlight::Slot d;
  auto over = gate.enter("other", 5000, d);
  ASSERT_TRUE(over);
  EXPECT_GT(over->retry_after_s, 0);
}

}  // namespace spanprof

// grpc/workers.h: the OTLP/gRPC receiver's pool.
#include <atomic>
#include <future>

#include "grpc/workers.h"

namespace spanprof {

TEST(Workers, QueueIsBoundedAndStopRunsWhatWaits) {
  Workers w(1, 2);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> ran{0};
  std::promise<void> started;
  ASSERT_TRUE(w.post([&] {
    started.set_value();
    gate.wait();
    ++ran;
  }));
  started.get_future().wait();  // the one thread is busy; the queue is empty
  EXPECT_TRUE(w.post([&] { ++ran; }));
  EXPECT_TRUE(w.post([&] { ++ran; }));
  EXPECT_FALSE(w.post([&] { ++ran; }));  // two waiting: full
  release.set_value();
  w.stop();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE(w.post([&] { ++ran; }));  // stopped
}

}  // namespace spanprof
