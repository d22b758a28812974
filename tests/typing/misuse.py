"""Mistakes the type checker must catch (test_typing.py expects an error on each marked line)."""

from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler, randperm

data = list(range(10))
ResumableRandomSampler(data, seed="0")  # error: seed is an int
ResumableDistributedSampler(data, num_replicas="2")  # error: num_replicas is an int
s = ResumableRandomSampler(data)
s.start_iter = "3"  # error: start_iter is an int
randperm(5, permutation=1)  # error: permutation is a str
name: str = next(iter(s))  # error: the samplers yield int
