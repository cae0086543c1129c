// Tests of runtime::LearningRateSchedule against torch.optim.lr_scheduler.
//
// The expected sequences were printed by this script (python3, torch 2.15.0):
//   def seq(make, epochs, per_epoch=1):
//       w = torch.zeros(1, requires_grad=True)
//       opt = torch.optim.SGD([w], lr=0.1); sch = make(opt); out = []
//       for e in range(epochs):
//           for _ in range(per_epoch): out.append(opt.param_groups[0]['lr'])
//           opt.step(); sch.step()
//       return out
// where `per_epoch` repeats an epoch-stepped scheduler's rate for each
// optimizer step of the epoch; the calls are quoted at each test.
#include "runtime/lr_schedule.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace lasgd::runtime {
namespace {

void ExpectSequence(const LearningRateSchedule& schedule, const std::vector<double>& expected) {
  for (size_t s = 0; s < expected.size(); ++s) {
    EXPECT_NEAR(schedule.LearningRate(static_cast<int64_t>(s)), expected[s],
                1e-15 + 1e-12 * expected[s])
        << "step " << s << " of " << schedule.Describe();
  }
}

LearningRateSchedule Make(const ScheduleConfig& config, int64_t steps_per_epoch,
                          int64_t total_steps, double lr = 0.1, int64_t batch = 64) {
  auto s = LearningRateSchedule::Create(config, lr, steps_per_epoch, total_steps, batch);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : LearningRateSchedule();
}

TEST(LearningRateScheduleTest, Constant) {
  ScheduleConfig c;
  ExpectSequence(Make(c, 5, 0), {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1});
}

TEST(LearningRateScheduleTest, StepLRPerEpoch) {
  // seq(lambda o: StepLR(o, step_size=2, gamma=0.5), 5, per_epoch=3)
  ScheduleConfig c;
  c.type = "step";
  c.step_size = 2;
  c.gamma = 0.5;
  ExpectSequence(Make(c, 3, 0), {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05,
                                 0.025, 0.025, 0.025});
}

TEST(LearningRateScheduleTest, MultiStepLRPerEpochCountsRepeatedMilestones) {
  // seq(lambda o: MultiStepLR(o, milestones=[3, 1, 3], gamma=0.1), 5, per_epoch=2)
  ScheduleConfig c;
  c.type = "multistep";
  c.milestones = {3, 1, 3};
  c.gamma = 0.1;
  ExpectSequence(Make(c, 2, 0),
                 {0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002,
                  0.010000000000000002, 0.00010000000000000005, 0.00010000000000000005,
                  0.00010000000000000005, 0.00010000000000000005});
}

TEST(LearningRateScheduleTest, CosineAnnealingPerStepThenHeldAtMin) {
  // seq(lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.001), 11)
  ScheduleConfig c;
  c.type = "cosine";
  c.min_lr = 0.001;
  LearningRateSchedule s = Make(c, 4, 10);
  ExpectSequence(s, {0.1, 0.09757729755661011, 0.0905463412215599, 0.07959536998847742,
                     0.0657963412215599, 0.0505, 0.03520365877844011, 0.02140463001152259,
                     0.010453658778440109, 0.0034227024433899004, 0.001});
  // Past the end torch's cosine would rise again; a run that goes on holds.
  EXPECT_DOUBLE_EQ(s.LearningRate(11), 0.001);
  EXPECT_DOUBLE_EQ(s.LearningRate(1000), 0.001);
}

TEST(LearningRateScheduleTest, WarmupTimesCosine) {
  // seq(lambda o: ChainedScheduler([LinearLR(o, start_factor=1/4, end_factor=1.0,
  //     total_iters=3), CosineAnnealingLR(o, T_max=10, eta_min=0.0)]), 10)
  ScheduleConfig c;
  c.type = "cosine";
  c.warmup_steps = 4;
  ExpectSequence(Make(c, 7, 10),
                 {0.025, 0.048776412907378844, 0.06783813728906053, 0.07938926261462366,
                  0.06545084971874737, 0.05, 0.03454915028125263, 0.02061073738537635,
                  0.009549150281252633, 0.0024471741852423235});
}

TEST(LearningRateScheduleTest, WarmupTimesStep) {
  // seq(lambda o: ChainedScheduler([LinearLR(o, start_factor=1/3, end_factor=1.0,
  //     total_iters=2), StepLR(o, step_size=2, gamma=0.5)]), 8), one step per epoch
  ScheduleConfig c;
  c.type = "step";
  c.warmup_steps = 3;
  c.step_size = 2;
  c.gamma = 0.5;
  ExpectSequence(Make(c, 1, 0), {0.03333333333333333, 0.06666666666666667, 0.05, 0.05, 0.025, 0.025,
                                 0.0125, 0.0125});
}

TEST(LearningRateScheduleTest, WarmupAlone) {
  // seq(lambda o: LinearLR(o, start_factor=1/4, end_factor=1.0, total_iters=3), 6)
  ScheduleConfig c;
  c.warmup_steps = 4;
  ExpectSequence(Make(c, 100, 0), {0.025, 0.05, 0.07500000000000001, 0.1, 0.1, 0.1});
  // One warm-up step is no warm-up at all.
  c.warmup_steps = 1;
  ExpectSequence(Make(c, 100, 0), {0.1, 0.1});
}

TEST(LearningRateScheduleTest, LinearScalingByBatch) {
  // lr 0.1 at base batch 256, run with a global batch of 1024: 0.4.
  ScheduleConfig c;
  c.base_batch_size = 256;
  c.warmup_steps = 2;
  LearningRateSchedule s = Make(c, 10, 0, 0.1, 1024);
  EXPECT_DOUBLE_EQ(s.base_lr(), 0.4);
  ExpectSequence(s, {0.2, 0.4, 0.4});
  EXPECT_EQ(s.Describe(), "constant 0.4, linear warm-up over 2 steps");
}

void ExpectCreateError(const ScheduleConfig& c, int64_t steps_per_epoch, int64_t total_steps,
                       const std::string& fragment) {
  auto s = LearningRateSchedule::Create(c, 0.1, steps_per_epoch, total_steps, 64);
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(std::string(s.status().message()).find(fragment), std::string::npos) << s.status();
}

TEST(LearningRateScheduleTest, BadConfigs) {
  ScheduleConfig c;
  c.type = "exponential";
  ExpectCreateError(c, 10, 100, "schedule.type must be one of constant, step, multistep, cosine");
  c = ScheduleConfig();
  c.type = "step";
  ExpectCreateError(c, 10, 100, "schedule.step_size >= 1");
  c.step_size = 3;
  c.gamma = 0;
  ExpectCreateError(c, 10, 100, "schedule.gamma must be > 0");
  c = ScheduleConfig();
  c.type = "multistep";
  ExpectCreateError(c, 10, 100, "needs schedule.milestones");
  c.milestones = {2, -1};
  ExpectCreateError(c, 10, 100, "schedule.milestones must be epochs >= 0");
  c = ScheduleConfig();
  c.type = "cosine";
  ExpectCreateError(c, 10, 0, "at least one step");
  c = ScheduleConfig();
  c.warmup_steps = -3;
  ExpectCreateError(c, 10, 100, "schedule.warmup_steps must be >= 0");
  c = ScheduleConfig();
  ExpectCreateError(c, 0, 100, "at least one optimizer step per epoch");
  c.base_batch_size = -1;
  ExpectCreateError(c, 10, 100, "schedule.base_batch_size must be >= 0");
}

}  // namespace
}  // namespace lasgd::runtime
