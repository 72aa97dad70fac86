#include "store/group_commit.h"

namespace paypath::store {
namespace {

std::vector<double> SizeBuckets() { return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}; }

// Queue waits: 10 us to 100 ms, dense around max_wait's default (1 ms).
std::vector<double> WaitBuckets() {
  return {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1};
}

}  // namespace

Status GroupCommitOptions::Validate() const {
  if (max_batch < 1 || max_batch > 4096) return Error::InvalidArgument("the group commit batch size must be 1..4096");
  if (max_wait.count() < 0 || max_wait > std::chrono::milliseconds(100))
    return Error::InvalidArgument("the group commit max wait must be 0..100 ms");
  if (connections < 1 || connections > 16)
    return Error::InvalidArgument("the group commit connections per phase must be 1..16");
  return OkStatus();
}

GroupCommitMetrics::GroupCommitMetrics(const std::string& phase)
    : batch_size(metrics::Registry::Default().GetHistogram(
          "paypath_group_commit_batch_size", "Items per group-commit batch, by phase (claim, complete)", SizeBuckets(),
          {{"phase", phase}})),
      wait_seconds(metrics::Registry::Default().GetHistogram(
          "paypath_group_commit_wait_seconds",
          "Time an item waited in the group-commit queue before its batch left, by phase", WaitBuckets(),
          {{"phase", phase}})),
      splits(metrics::Registry::Default().GetCounter(
          "paypath_group_commit_splits_total",
          "Group-commit batches split in two and retried because a row in them was refused, by phase",
          {{"phase", phase}})),
      queued(metrics::Registry::Default().GetGauge("paypath_group_commit_queued",
                                                   "Items waiting in the group-commit queue for a batch, by phase",
                                                   {{"phase", phase}})) {}

}  // namespace paypath::store
