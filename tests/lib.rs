mod logs_status;
