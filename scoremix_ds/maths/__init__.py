"""Pure maths: the mixing rule, class centres and distances, pair strategies. No IO, no logging, no globals."""
