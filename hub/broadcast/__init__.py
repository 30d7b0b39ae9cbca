"""The village loudspeakers: programmes, schedules, priorities, emergency alerts and the broadcast log."""
